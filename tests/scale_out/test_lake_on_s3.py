"""The lake on object storage by configuration only: lake and checkpoints on s3a:// of a local S3-compatible
server (moto's ThreadedMotoServer on 127.0.0.1), reached through Hadoop's real S3A connector (hadoop-aws + the
AWS SDK v2 modules of `make setup-s3`), with RETAIL_S3_ENDPOINT / RETAIL_S3_PATH_STYLE_ACCESS / RETAIL_S3_REGION and
credentials from the AWS_* environment (S3A's default provider chain). The speed layer drains generated traffic
into bronze and the speed views, which reconcile exactly; the batch job then validates and publishes a day from
that bronze. Nothing is written to the local disk in place of the bucket.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from deltalake import DeltaTable

from contracts.settings import PROJECT_ROOT
from contracts.tables import Lake
from event_generator.generator import GeneratorConfig, generate, produce
from tests.conftest import free_port
from tests.scale_out.conftest import (
    assert_speed_tables_reconcile,
    expected_revenue_per_minute,
    pipeline_env,
    run_retail,
)

# slow on a busy 2-core box (several JVMs per test): past the suite's 900 s default
pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]

T0 = datetime(2026, 6, 2, 10, 0, tzinfo=UTC)
BUCKET = "retail-lake"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    import boto3
    from moto.server import ThreadedMotoServer  # a real HTTP server speaking the S3 REST API (dev dependency)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **_boto_credentials())
    client.create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


def test_speed_and_batch_layers_run_on_an_s3a_lake(kafka, settings, test_root, s3_endpoint) -> None:  # type: ignore[no-untyped-def]
    import boto3

    if not any((settings.jar_cache / "s3").glob("hadoop-aws-*.jar")):
        pytest.skip("the s3 jar group is not fetched: run `make setup-s3` (make test does)")
    run_settings = settings.model_copy(
        update={
            "events_topic": "s3.events",
            "alerts_topic": "s3.alerts",
            "speed_sales_topic": "s3.speed.sales",
            "speed_inventory_topic": "s3.speed.inventory",
            "lake_root": f"s3a://{BUCKET}/lake",
            "checkpoint_root": f"s3a://{BUCKET}/checkpoints",
        }
    )
    kafka.ensure_topics({run_settings.events_topic: 3, run_settings.alerts_topic: 1})
    config = GeneratorConfig(
        seed=17,
        count=600,
        rate=10,
        start=T0,
        products=6,
        late_ratio=0.02,
        late_minutes=1,
        duplicate_ratio=0.02,
        malformed_ratio=0.01,
    )
    produced = list(generate(config))
    produce(produced, run_settings)

    env = pipeline_env(
        run_settings,
        RETAIL_S3_ENDPOINT=s3_endpoint,
        RETAIL_S3_PATH_STYLE_ACCESS="true",
        RETAIL_S3_REGION="us-east-1",
        **CREDENTIALS,
    )
    log = test_root / "s3-lake.log"
    assert run_retail(["speed", "--available-now"], env, log) == 0, log.read_text()[-4000:]

    storage = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
        **CREDENTIALS,
    }
    lake = Lake(run_settings.lake_root, run_settings.checkpoint_root)
    facts = assert_speed_tables_reconcile(lake, produced, storage_options=storage)

    day = T0.date().isoformat()
    assert run_retail(["batch", "--date", day, "--lookback-days", "0"], env, log) == 0, log.read_text()[-4000:]
    runs = DeltaTable(lake.table("batch/runs"), storage_options=storage).to_pandas()
    assert list(runs.status) == ["succeeded"], runs
    day_view = DeltaTable(lake.table("batch/sales_day"), storage_options=storage).to_pandas()
    total = day_view[day_view.dimension == "total"]
    assert [Decimal(str(value)) for value in total.revenue] == [sum(expected_revenue_per_minute(produced).values())]

    # everything is in the bucket: tables, streaming checkpoints, the batch reports; nothing on the local disk
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **_boto_credentials())
    keys = [
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for item in page.get("Contents", [])
    ]
    for prefix in (
        "lake/bronze/events/_delta_log/",
        "lake/speed/sales_minute/",
        "checkpoints/bronze/",
        "lake/batch/runs/",
    ):
        assert any(key.startswith(prefix) for key in keys), prefix
    assert not (PROJECT_ROOT / "s3a:").exists() and not (test_root / "s3a:").exists()
    print(f"\n[s3a lake] {len(keys)} objects in s3://{BUCKET}; speed reconciled {facts}; batch day {day} published")
