"""The deployment files, checked without containers (none can be built or run here):
deploy/docker-compose.yaml against the Compose Specification's JSON schema (the copy
check-jsonschema ships), deploy/dagster.yaml and the instance config that
deploy/helm/values.yaml makes through Dagster's own validation, and the pieces every file
must agree on (the code location, the volume, the secrets, the pools)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

REPO_ROOT = Path(__file__).resolve().parents[1]
DEPLOY_DIR = REPO_ROOT / "deploy"
MODULE = "de_pipeline.defs.definitions"
DAGSTER_SERVICES = ("code-server", "webserver", "daemon")
LAKE_SERVICES = (
    "minio",
    "lake-bucket",
    "lake-catalog",
    "lake-pools",
    "lake-code-server",
    "lake-webserver",
    "lake-daemon",
)
# deploy/.env's secrets of the lake, and the only services that may read each
LAKE_SECRET_READERS = {
    "LAKE_MINIO_ROOT_PASSWORD": {"minio", "lake-bucket"},
    "LAKE_S3_SECRET_KEY": {"lake-bucket", "lake-code-server"},
    "LAKE_PG_PASSWORD": {"lake-catalog", "lake-code-server"},
}
INTERPOLATED = re.compile(r"\$\{(\w+)")  # ${NAME...} in a compose value
# What the local and the deployed instance share (deploy/dagster.yaml adds storage and launcher).
SHARED_SETTINGS = ("concurrency", "run_monitoring", "freshness", "run_coordinator")
PINNED = re.compile(r"^[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}$")  # name:tag@digest


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _env_names(config: Any) -> set[str]:
    """The variables a Dagster config file reads with `{env: NAME}`."""
    if isinstance(config, dict):
        if set(config) == {"env"}:
            return {config["env"]}
        return set().union(*map(_env_names, config.values()))
    if isinstance(config, list):
        return set().union(*map(_env_names, config))
    return set()


def _validated_instance_config(tmp_path: Path, config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict:
    """`config` as Dagster validates a dagster.yaml (schema, and the concurrency rules)."""
    for name in _env_names(config):
        monkeypatch.setenv(name, "5432" if name.endswith("PORT") else "x")
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    validated, _ = dagster_instance_config(str(tmp_path))
    return dict(validated)


# ---- deploy/dagster.yaml ---------------------------------------------------------------


def test_deployed_instance_is_valid_and_keeps_the_local_settings(tmp_path, monkeypatch) -> None:
    deployed = _yaml(DEPLOY_DIR / "dagster.yaml")
    validated = _validated_instance_config(tmp_path, deployed, monkeypatch)
    assert set(validated["storage"]) == {"postgres"}
    assert _env_names(deployed["storage"]) == {
        f"DAGSTER_PG_{part}" for part in ("HOST", "PORT", "USER", "PASSWORD", "DB")
    }
    assert deployed["run_launcher"]["class"] == "DefaultRunLauncher"
    assert validated["telemetry"] == {"enabled": False}  # no usage statistics leave the deployment
    local = _yaml(REPO_ROOT / "dagster.yaml")
    assert {k: deployed[k] for k in SHARED_SETTINGS} == {k: local[k] for k in SHARED_SETTINGS}


# ---- deploy/docker-compose.yaml and the Dockerfile ---------------------------------------


def test_compose_file_follows_the_compose_specification() -> None:
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    if checker is None:
        pytest.skip("check-jsonschema is not installed: pip install -e '.[test]'")
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(DEPLOY_DIR / "docker-compose.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_services_share_the_instance_and_only_the_code_server_has_the_key() -> None:
    compose = _yaml(DEPLOY_DIR / "docker-compose.yaml")
    services = compose["services"]
    assert set(services) == {"postgres", *DAGSTER_SERVICES, *LAKE_SERVICES}
    read = _env_names(_yaml(DEPLOY_DIR / "dagster.yaml")) | _env_names(_yaml(DEPLOY_DIR / "workspace.yaml"))
    for name in DAGSTER_SERVICES:
        environment = services[name]["environment"]
        assert read <= set(environment), (name, read - set(environment))
        assert not any(variable.startswith("DE_API") for variable in environment), name
        assert services[name]["image"] == services["code-server"]["image"]
        if name != "code-server":
            assert "env_file" not in services[name], f"{name} needs no account settings"
            assert services[name]["command"][-2:] == ["-w", "/opt/dagster/workspace.yaml"], name
            assert services[name]["depends_on"]["code-server"] == {"condition": "service_healthy"}
    # the account and its key from an env file, read by the code server only
    code_server = services["code-server"]
    assert code_server["env_file"] == "de-pipeline.env"
    assert (DEPLOY_DIR / "de-pipeline.env.example").read_text().count("DE_API_KEY=\n") == 1
    # the warehouse and the archive on the named volume `warehouse`
    assert "warehouse:/data" in code_server["volumes"] and "warehouse" in compose["volumes"]
    for variable in ("DE_DUCKDB_PATH", "DE_ARCHIVE_DIR"):
        assert code_server["environment"][variable].startswith("/data/"), variable
    assert code_server["environment"]["DAGSTER_CODE_SERVER_PORT"] == "4000"


def test_compose_publishes_the_ui_on_loopback_only_and_pins_its_images() -> None:
    services = _yaml(DEPLOY_DIR / "docker-compose.yaml")["services"]
    # the UI has no login: on the host's loopback, for an authenticating proxy (docs/deploying.md)
    published = {name: service["ports"] for name, service in services.items() if "ports" in service}
    assert published == {"webserver": ["127.0.0.1:3000:3000"], "lake-webserver": ["127.0.0.1:3000:3000"]}, published
    # images pulled from a registry are pinned by digest; the pipeline's own is built here
    pulled = {
        name: s["image"]
        for name, s in services.items()
        if "build" not in s and s["image"] not in {"de-pipeline:latest", "de-pipeline-lake:latest"}
    }
    assert set(pulled) == {"postgres", "minio", "lake-bucket", "lake-catalog"}, pulled
    assert all(PINNED.match(image) for image in pulled.values()), pulled


# ---- deploy/docker-compose.yaml, profile `lake` ------------------------------------------


def _compose_services() -> dict[str, Any]:
    return _yaml(DEPLOY_DIR / "docker-compose.yaml")["services"]


def _interpolated(service: dict[str, Any]) -> set[str]:
    """The variables of deploy/.env a service's definition takes (`${NAME}`)."""
    return set(INTERPOLATED.findall(yaml.safe_dump(service)))


def _env_file(name: str) -> dict[str, str]:
    lines = (DEPLOY_DIR / name).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_compose_lake_services_start_only_with_the_lake_profile() -> None:
    services = _compose_services()
    assert {name: services[name].get("profiles") for name in LAKE_SERVICES} == dict.fromkeys(LAKE_SERVICES, ["lake"])
    # the DuckDB deployment is the other profile, the one deploy/.env starts by default
    assert {name: services[name].get("profiles") for name in DAGSTER_SERVICES} == dict.fromkeys(
        DAGSTER_SERVICES, ["duckdb"]
    )
    assert "profiles" not in services["postgres"]  # Dagster's storage, for both
    assert _env_file(".env.example")["COMPOSE_PROFILES"] == "duckdb"
    # a lake service waits only for services that start with it
    for name in LAKE_SERVICES:
        assert set(services[name].get("depends_on", {})) <= {"postgres", *LAKE_SERVICES}, name
    # the lake's Dagster services: those of the DuckDB profile, on the lake's code server
    for name in ("webserver", "daemon"):
        lake = services[f"lake-{name}"]
        assert lake["command"] == services[name]["command"], name
        assert lake["environment"] == {**services[name]["environment"], "DAGSTER_CODE_SERVER_HOST": "lake-code-server"}
        assert lake["depends_on"]["lake-code-server"] == {"condition": "service_healthy"}
        assert lake["image"] == services["lake-code-server"]["image"]
    code_server = services["lake-code-server"]
    assert "lake" in code_server["build"]["args"]["EXTRAS"].split(",")
    assert code_server["depends_on"]["lake-bucket"] == {"condition": "service_completed_successfully"}
    # many runs write the lake at once: its pool gets more than one slot
    *set_limit, pool, limit = services["lake-pools"]["command"]
    assert set_limit == ["dagster", "instance", "concurrency", "set"] and pool == "ducklake_warehouse"
    assert int(limit) > 1
    assert services["lake-daemon"]["depends_on"]["lake-pools"] == {"condition": "service_completed_successfully"}


def test_compose_lake_has_no_warehouse_volume_and_its_secrets_only_where_needed() -> None:
    services = _compose_services()
    for name in LAKE_SERVICES:
        mounts = [volume.split(":")[0] for volume in services[name].get("volumes", [])]
        assert "warehouse" not in mounts, name
        readers = {secret for secret, allowed in LAKE_SECRET_READERS.items() if name in allowed}
        assert _interpolated(services[name]) - {"DAGSTER_PG_PASSWORD"} == readers, name
    for name in ("postgres", *DAGSTER_SERVICES):
        assert not _interpolated(services[name]) & set(LAKE_SECRET_READERS), name
    for secret in LAKE_SECRET_READERS:
        assert _env_file(".env.example")[secret] == "", secret  # to fill in, in the git-ignored copy
    # the lake's settings: read by its code server only, and holding no secret
    env_files = {name: s["env_file"] for name, s in services.items() if "env_file" in s}
    assert env_files == {"code-server": "de-pipeline.env", "lake-code-server": ["de-pipeline.env", "lake.env"]}
    settings = _env_file("lake.env.example")
    assert settings["DE_WAREHOUSE"].startswith("ducklake:postgres:") and "password" not in settings["DE_WAREHOUSE"]
    assert settings["DE_LAKE_DATA_PATH"].startswith("s3://") and settings["DE_READER_COPY_PATH"] == "off"
    assert not {"PGPASSWORD", "AWS_SECRET_ACCESS_KEY"} & set(settings), settings
    assert {"PGPASSWORD", "AWS_SECRET_ACCESS_KEY"} <= set(services["lake-code-server"]["environment"])
    assert "DE_DUCKDB_PATH" not in services["lake-code-server"]["environment"]
    assert "/deploy/lake.env" in (REPO_ROOT / ".gitignore").read_text().splitlines()


def test_dockerfile_serves_the_code_location_and_holds_no_secret() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "ARG EXTRAS=deploy\n" in dockerfile and 'pip install ".[${EXTRAS}]"' in dockerfile
    assert "COPY deploy/dagster.yaml ${DAGSTER_HOME}/dagster.yaml" in dockerfile
    assert "COPY deploy/workspace.yaml /opt/dagster/workspace.yaml" in dockerfile
    cmd = next(line for line in dockerfile.splitlines() if line.startswith("CMD "))
    assert yaml.safe_load(cmd.removeprefix("CMD ")) == [
        "dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", MODULE,
    ]  # fmt: skip
    assert "DE_API_KEY" not in dockerfile and "PASSWORD" not in dockerfile
    bases = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert bases and all(PINNED.match(base) for base in bases), bases
    assert "deploy/de-pipeline.env" in (REPO_ROOT / ".gitignore").read_text()


# ---- deploy/helm/values.yaml -------------------------------------------------------------

# Keys of the chart's values.schema.json (dagster-io/dagster, helm/dagster/values.schema.json
# and helm/dagster/schema/schema/charts/dagster/subschema/concurrency.py, read 2026-12-02);
# the chart refuses values with other keys where its schema says additionalProperties: false.
CHART_TOP_LEVEL_KEYS = {
    "dagsterWebserver", "dagster-user-deployments", "postgresql", "generatePostgresqlPasswordSecret",
    "generateCeleryConfigSecret", "rabbitmq", "redis", "flower", "ingress", "imagePullSecrets",
    "computeLogManager", "scheduler", "runLauncher", "pythonLogs", "dagsterDaemon", "busybox", "migrate",
    "telemetry", "serviceAccount", "global", "retention", "additionalInstanceConfig", "concurrency",
}  # fmt: skip
CHART_USER_DEPLOYMENT_KEYS = {
    "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns", "deploymentNamespace",
    "port", "env", "envConfigMaps", "envSecrets", "annotations", "nodeSelector", "affinity", "tolerations",
    "podSecurityContext", "securityContext", "resources", "livenessProbe", "readinessProbe", "startupProbe",
    "labels", "volumeMounts", "volumes", "schedulerName", "initContainers", "sidecarContainers", "replicaCount",
}  # fmt: skip
CHART_DAEMON_KEYS = {
    "enabled", "image", "runCoordinator", "heartbeatTolerance", "env", "envConfigMaps", "envSecrets",
    "deploymentLabels", "labels", "nodeSelector", "affinity", "tolerations", "podSecurityContext",
    "securityContext", "resources", "livenessProbe", "readinessProbe", "startupProbe", "annotations",
    "runMonitoring", "runRetries", "sensors", "schedules", "schedulerName", "volumeMounts", "volumes",
    "initContainerResources",
}  # fmt: skip
CHART_K8S_RUN_LAUNCHER_KEYS = {
    "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile", "envConfigMaps",
    "envSecrets", "envVars", "volumeMounts", "volumes", "labels", "failPodOnRunFailure", "resources",
    "schedulerName", "securityContext", "runK8sConfig",
}  # fmt: skip
CHART_POSTGRESQL_KEYS = {
    "image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword", "postgresqlDatabase",
    "postgresqlParams", "postgresqlScheme", "service",
}  # fmt: skip


HELM_VALUES = ("values.yaml", "values-lake.yaml")  # DuckDB, DuckLake


def _helm_values(name: str = "values.yaml") -> dict[str, Any]:
    return _yaml(DEPLOY_DIR / "helm" / name)


def _run_launcher_from_helm(values: dict[str, Any]) -> dict[str, Any]:
    """The run_launcher the chart writes (helpers/instance/_run-launcher.tpl), for the custom
    launcher and the K8sRunLauncher; the release's namespace and service account as placeholders."""
    launcher = values["runLauncher"]
    if launcher["type"] == "CustomRunLauncher":
        custom = launcher["config"]["customRunLauncher"]
        return {k: custom[k] for k in ("module", "class", "config")}
    assert launcher["type"] == "K8sRunLauncher", launcher["type"]
    k8s = launcher["config"]["k8sRunLauncher"]
    config = {
        "load_incluster_config": k8s["loadInclusterConfig"],
        "job_namespace": k8s.get("jobNamespace", "de-pipeline"),
        "image_pull_policy": k8s["imagePullPolicy"],
        "service_account_name": "de-pipeline",
        "dagster_home": {"env": "DAGSTER_HOME"},
        "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
        "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
        "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}]
        + [c["name"] for c in k8s["envConfigMaps"]],
        **({"env_secrets": [secret["name"] for secret in k8s["envSecrets"]]} if k8s["envSecrets"] else {}),
        **({"volumes": k8s["volumes"], "volume_mounts": k8s["volumeMounts"]} if k8s["volumes"] else {}),
    }
    return {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": config}


def _instance_config_from_helm(values: dict[str, Any]) -> dict[str, Any]:
    """The parts of dagster.yaml the chart writes from these values, as its templates do
    (helpers/instance/_concurrency.tpl, _run-coordinator.tpl, _run-launcher.tpl, and
    configmap-instance.yaml for run_monitoring and additionalInstanceConfig)."""
    daemon, concurrency = values["dagsterDaemon"], values["concurrency"]
    monitoring = daemon["runMonitoring"]
    coordinator = daemon["runCoordinator"]["config"]["customRunCoordinator"]
    return {
        "run_coordinator": {k: coordinator[k] for k in ("module", "class", "config")},
        "run_launcher": _run_launcher_from_helm(values),
        "concurrency": {
            "pools": {
                "default_limit": concurrency["pools"]["defaultLimit"],
                "granularity": concurrency["pools"]["granularity"],
                "op_granularity_run_buffer": concurrency["pools"]["opGranularityRunBuffer"],
            },
            "runs": {"max_concurrent_runs": concurrency["runs"]["maxConcurrentRuns"]},
        },
        "run_monitoring": {
            "enabled": monitoring["enabled"],
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
            "free_slots_after_run_end_seconds": monitoring["freeSlotsAfterRunEndSeconds"],
        },
        "telemetry": {"enabled": values["telemetry"]["enabled"]},  # configmap-instance.yaml
        **values["additionalInstanceConfig"],
    }


@pytest.mark.parametrize("name", HELM_VALUES)
def test_helm_values_use_only_keys_of_the_chart(name: str) -> None:
    values = _helm_values(name)
    assert set(values) <= CHART_TOP_LEVEL_KEYS, set(values) - CHART_TOP_LEVEL_KEYS
    for deployment in values["dagster-user-deployments"]["deployments"]:
        assert set(deployment) <= CHART_USER_DEPLOYMENT_KEYS, set(deployment) - CHART_USER_DEPLOYMENT_KEYS
    assert set(values["dagsterDaemon"]) <= CHART_DAEMON_KEYS, set(values["dagsterDaemon"]) - CHART_DAEMON_KEYS
    assert set(values["postgresql"]) <= CHART_POSTGRESQL_KEYS, set(values["postgresql"]) - CHART_POSTGRESQL_KEYS
    assert set(values["concurrency"]) == {"enabled", "pools", "runs"}
    k8s_launcher = values["runLauncher"]["config"].get("k8sRunLauncher", {})
    assert set(k8s_launcher) <= CHART_K8S_RUN_LAUNCHER_KEYS, set(k8s_launcher) - CHART_K8S_RUN_LAUNCHER_KEYS


def test_helm_values_make_the_deployed_instance(tmp_path, monkeypatch) -> None:
    """The instance the chart writes is valid for Dagster and has the pools, run queue, run
    monitoring, freshness and run launcher of deploy/dagster.yaml."""
    values = _helm_values()
    assert values["concurrency"]["enabled"] and values["dagsterDaemon"]["runMonitoring"]["enabled"]
    rendered = _instance_config_from_helm(values)
    validated = _validated_instance_config(tmp_path, rendered, monkeypatch)
    deployed = _yaml(DEPLOY_DIR / "dagster.yaml")
    for key in ("concurrency", "freshness", "run_launcher", "telemetry"):
        assert {k: v for k, v in validated[key].items() if k != "config"} == {
            k: v for k, v in deployed[key].items() if k != "config"
        }, key
    assert rendered["run_coordinator"] == deployed["run_coordinator"]  # the queue read every second
    # the chart always writes a start timeout; 180 s is Dagster's default
    assert rendered["run_monitoring"] == {"start_timeout_seconds": 180, **deployed["run_monitoring"]}
    assert values["postgresql"]["postgresqlScheme"] == deployed["storage"]["postgres"]["postgres_db"]["scheme"]


def test_helm_user_deployment_takes_the_key_from_a_secret() -> None:
    values = _helm_values()
    assert values["dagster-user-deployments"]["enabled"] and values["dagster-user-deployments"]["enableSubchart"]
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["codeServerArgs"] == ["-m", MODULE]
    assert deployment["envSecrets"] == [{"name": "de-pipeline-api"}]
    assert not any(name.startswith("DE_API") for name in deployment["env"]), deployment["env"]
    # the warehouse and the archive on the volume this pod (and its runs) mount
    [mount] = deployment["volumeMounts"]
    [volume] = deployment["volumes"]
    assert mount["name"] == volume["name"] and "persistentVolumeClaim" in volume
    for variable in ("DE_DUCKDB_PATH", "DE_ARCHIVE_DIR"):
        assert deployment["env"][variable].startswith(mount["mountPath"] + "/"), variable
    assert deployment["replicaCount"] == 1  # one writer of the DuckDB file
    # Dagster's storage: the password from a Secret, never in the values
    assert "postgresqlPassword" not in values["postgresql"] and not values["generatePostgresqlPasswordSecret"]
    assert values["global"]["postgresqlSecretName"]
    images = {values[k]["image"]["repository"] for k in ("dagsterWebserver", "dagsterDaemon")}
    assert images == {deployment["image"]["repository"]}


# ---- deploy/helm/values-lake.yaml ----------------------------------------------------------


def _volumes_anywhere(values: Any) -> list[Any]:
    """Every volume, volume mount or claim the values declare, at any depth."""
    if isinstance(values, dict):
        found = [v for k, v in values.items() if k in {"volumes", "volumeMounts", "persistentVolumeClaim"} and v]
        return found + [f for v in values.values() for f in _volumes_anywhere(v)]
    if isinstance(values, list):
        return [f for v in values for f in _volumes_anywhere(v)]
    return []


def test_helm_lake_values_make_a_valid_instance_with_runs_as_jobs(tmp_path, monkeypatch) -> None:
    values = _helm_values("values-lake.yaml")
    rendered = _instance_config_from_helm(values)
    validated = _validated_instance_config(tmp_path, rendered, monkeypatch)
    assert (validated["run_launcher"]["module"], validated["run_launcher"]["class"]) == (
        "dagster_k8s",
        "K8sRunLauncher",
    )
    assert rendered["run_launcher"]["config"]["load_incluster_config"] is True
    # the rest as the DuckDB deployment's: the queue, monitoring, freshness, telemetry
    deployed = _yaml(DEPLOY_DIR / "dagster.yaml")
    assert rendered["run_coordinator"] == deployed["run_coordinator"]
    for key in ("freshness", "telemetry"):
        assert validated[key] == deployed[key], key
    # every pool but the lake's keeps one slot (one fetch from the API at a time); the lake's
    # limit is set in Dagster's storage (the chart has no value for one pool), and many runs go
    assert validated["concurrency"]["pools"] == deployed["concurrency"]["pools"]
    assert validated["concurrency"]["runs"]["max_concurrent_runs"] > 1
    assert (
        "dagster instance concurrency set ducklake_warehouse" in (DEPLOY_DIR / "helm" / "values-lake.yaml").read_text()
    )


def test_helm_lake_values_mount_no_volume_and_take_the_credentials_from_secrets() -> None:
    values = _helm_values("values-lake.yaml")
    assert not _volumes_anywhere(values), _volumes_anywhere(values)
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["codeServerArgs"] == ["-m", MODULE]
    # the account and the lake's credentials from Secrets; the run pods get the code server's
    assert deployment["envSecrets"] == [{"name": "de-pipeline-api"}, {"name": "de-pipeline-lake"}]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    env = deployment["env"]
    secret_names = {"PGPASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert not secret_names & set(env) and not any(name.startswith("DE_API") for name in env), env
    assert env["DE_WAREHOUSE"].startswith("ducklake:postgres:") and "password" not in env["DE_WAREHOUSE"]
    assert env["DE_LAKE_DATA_PATH"].startswith("s3://") and env["DE_READER_COPY_PATH"] == "off"
    assert "DE_DUCKDB_PATH" not in env
    # nor in the values of the other processes
    for name in ("dagsterDaemon", "dagsterWebserver"):
        assert not values[name].get("envSecrets") and not values[name].get("env"), name
    assert "postgresqlPassword" not in values["postgresql"] and not values["generatePostgresqlPasswordSecret"]
    images = {values[k]["image"]["repository"] for k in ("dagsterWebserver", "dagsterDaemon")}
    assert images == {deployment["image"]["repository"]}
