"""The `check_connection` job: `de-pipeline check` in the Dagster UI. Its run log shows the
table; the run fails when no working configuration was found."""

# No `from __future__ import annotations`: Dagster reads the context and config annotations.

from dagster import Config, Failure, OpExecutionContext, job, op

from de_pipeline.accounts import account_named
from de_pipeline.connection_check import check_connection, render
from de_pipeline.defs.resources import DigitalEngagementApi, Warehouse


class CheckConnectionConfig(Config):
    account: str = ""  # the account's name in DE_PROVIDERS_FILE; empty: the only account


@op
def probe_the_api(
    context: OpExecutionContext, config: CheckConnectionConfig, api: DigitalEngagementApi, warehouse: Warehouse
) -> None:
    """Ask the API how it wants to be asked (at most 20 requests) and log what it answered."""
    account = account_named(config.account or None)
    report = check_connection(api.source(account), warehouse.settings(account))
    context.log.info(render(report))
    if not report.ok:
        raise Failure(description=report.result.failure)


@job(
    name="check_connection",
    description="Probe the API (or the embedded simulator): the key's form, the epoch unit, paging, field "
    "types and placeholders; the run log shows the table and the settings to use.",
)
def check_connection_job() -> None:
    probe_the_api()
