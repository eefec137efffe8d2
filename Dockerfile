# The image of the code location: the gRPC code server, which also runs the runs (Dagster's
# DefaultRunLauncher starts each run as a subprocess of it). dagster-webserver and
# dagster-daemon run from the same image (deploy/docker-compose.yaml, deploy/helm/values.yaml).
# No secret is in it: the API key and the PostgreSQL password come from the environment.
#
#   docker build -t de-pipeline:latest .
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    # the warehouse and its raw archive: a volume is mounted on /data
    DE_DUCKDB_PATH=/data/de_pipeline.duckdb \
    DE_ARCHIVE_DIR=/data/de_pipeline_archive

WORKDIR /opt/dagster/app
COPY pyproject.toml README.md ./
COPY de_pipeline ./de_pipeline
RUN pip install '.[deploy]'

# the instance (PostgreSQL from DAGSTER_PG_*) and the workspace of webserver and daemon
COPY deploy/dagster.yaml ${DAGSTER_HOME}/dagster.yaml
COPY deploy/workspace.yaml /opt/dagster/workspace.yaml

RUN useradd --create-home --uid 1000 dagster \
    && mkdir -p /data ${DAGSTER_HOME}/storage \
    && chown -R dagster /data ${DAGSTER_HOME}
USER dagster

EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "de_pipeline.defs.definitions"]
