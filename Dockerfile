# The image of the code location: the gRPC code server, which also runs the runs (Dagster's
# DefaultRunLauncher starts each run as a subprocess of it). dagster-webserver and
# dagster-daemon run from the same image (deploy/docker-compose.yaml, deploy/helm/values.yaml).
# No secret is in it: the API key and the PostgreSQL password come from the environment.
#
#   docker build -t de-pipeline:latest .
# Pinned by digest: python:3.11-slim (Python 3.11.15 on Debian trixie) as
# docker-library/repo-info recorded it on 2026-08-05. To move to the tag's current image:
#   docker buildx imagetools inspect python:3.11-slim   # its "Digest:" line
FROM python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    # the warehouse and its raw archive: a volume is mounted on /data
    DE_DUCKDB_PATH=/data/de_pipeline.duckdb \
    DE_ARCHIVE_DIR=/data/de_pipeline_archive

WORKDIR /opt/dagster/app
COPY pyproject.toml README.md ./
COPY de_pipeline ./de_pipeline
# the extras: `deploy` (PostgreSQL storage); a DuckLake image adds `lake` (DuckDB's extensions),
# and for Helm's run pods `k8s`: docker build --build-arg EXTRAS=deploy,lake,k8s
ARG EXTRAS=deploy
RUN pip install ".[${EXTRAS}]"

# the instance (PostgreSQL from DAGSTER_PG_*) and the workspace of webserver and daemon
COPY deploy/dagster.yaml ${DAGSTER_HOME}/dagster.yaml
COPY deploy/workspace.yaml /opt/dagster/workspace.yaml

RUN useradd --create-home --uid 1000 dagster \
    && mkdir -p /data ${DAGSTER_HOME}/storage \
    && chown -R dagster /data ${DAGSTER_HOME}
USER dagster

EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "de_pipeline.defs.definitions"]
