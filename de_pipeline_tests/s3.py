"""A throwaway S3-compatible server (moto's, in a thread of this process) on 127.0.0.1 with
one bucket, for the lake's tests (test_lake.py) and benchmark (benchmarks/lake.py).
moto comes with the `test` extra (moto[server], boto3 with it)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from de_pipeline_tests.dagster_dev import free_port

REGION = "us-east-1"


def s3_client(endpoint: str, key_id: str, secret: str) -> Any:
    """A boto3 S3 client of the server at `endpoint`."""
    import boto3

    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=REGION
    )


@contextmanager
def running_s3(bucket: str, key_id: str, secret: str) -> Iterator[str]:
    """An S3 server holding the empty bucket `bucket` for the duration of the block; its endpoint."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        s3_client(endpoint, key_id, secret).create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.stop()
