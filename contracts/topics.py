"""The pipeline's Kafka topics and the wire format of the speed views on them (plain Python, no JVM).

The speed layer writes its provisional views to compacted topics with Spark's Kafka sink, and the serving
layer materialises them in memory: that is the latency path (docs/design.md, "The flow"). The Delta speed tables
are the durable copy, filled from the same topics on a slower trigger.

- ``retail.speed.sales``: key ``sales_key(dimension, key, bucket_start)``, value a JSON object with
  SPEED_SALES_FIELDS (revenue as a decimal string, users_sketch as base64, timestamps ISO-8601 UTC).
- ``retail.speed.inventory``: key product_id, value a JSON object with INVENTORY_FIELDS.
- ``retail.alerts``: key alert_id, value a JSON object with ALERT_FIELDS; every message carries the alert's
  whole state so far (``state`` opened or resolved), so the newest message per alert_id is the alert.

Every value on a compacted topic is the full current value of its key (Spark's update output mode), so a
replayed micro-batch (the Kafka sink is at-least-once) only repeats a value that was already there.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contracts.settings import Settings

__all__ = [
    "TopicSpec",
    "pipeline_topics",
    "ensure_topics",
    "sales_key",
    "SPEED_SALES_FIELDS",
    "INVENTORY_FIELDS",
    "ALERT_FIELDS",
    "JSON_TIMESTAMP_FORMAT",
]

# Spark's datetime pattern for timestamps in the JSON values: microseconds, UTC offset as Z
JSON_TIMESTAMP_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"

SPEED_SALES_FIELDS: tuple[str, ...] = (
    "bucket_start",
    "bucket_end",
    "dimension",
    "key",
    "revenue",
    "orders",
    "units",
    "users_sketch",
    "users_estimate",
    "updated_at",
)
INVENTORY_FIELDS: tuple[str, ...] = (
    "product_id",
    "stock",
    "threshold",
    "below_threshold",
    "last_event_time",
    "updated_at",
)
ALERT_FIELDS: tuple[str, ...] = (
    "alert_id",
    "product_id",
    "kind",
    "state",
    "stock",
    "threshold",
    "at",
    "stock_at_open",
    "opened_at",
    "resolved_at",
)


@dataclass(frozen=True)
class TopicSpec:
    """A topic the pipeline needs: name, partition count and topic-level configs."""

    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


def pipeline_topics(settings: Settings) -> list[TopicSpec]:
    """Every topic of the pipeline with its layout; `retail up` and the speed layer create the missing ones."""
    compacted = {
        "cleanup.policy": "compact,delete",
        "retention.ms": str(settings.speed_topic_retention_hours * 3_600_000),
        # roll segments often so the compactor can drop superseded values of closed segments
        "segment.ms": str(10 * 60_000),
        "min.cleanable.dirty.ratio": "0.1",
    }
    return [
        TopicSpec(settings.events_topic, settings.events_partitions),
        TopicSpec(settings.alerts_topic, settings.alerts_partitions),
        TopicSpec(settings.speed_sales_topic, settings.speed_topic_partitions, compacted),
        TopicSpec(settings.speed_inventory_topic, 1, compacted),
    ]


def sales_key(dimension: str, key: str, bucket_start: datetime) -> str:
    """The message key of one speed rollup row: ``dimension|key|bucket start in epoch microseconds``."""
    micros = int(bucket_start.timestamp()) * 1_000_000 + bucket_start.microsecond
    return f"{dimension}|{key}|{micros}"


# A refused node stays in back-off for at least 40 ms (kafka-python: 50 ms, jittered, doubling on each refusal),
# so a retry 20 ms later goes to another node; ten attempts ride out several dead nodes and slow connects.
_ADMIN_ATTEMPTS = 10
_ADMIN_RETRY_S = 0.02


def ensure_topics(specs: Iterable[TopicSpec], client_options: Mapping[str, Any]) -> dict[str, int]:
    """Create the topics of ``specs`` that do not exist yet; returns every non-internal topic → partitions.

    ``client_options`` are kafka-python connection options (Settings.kafka_python_options()). Existing topics
    are left as they are. The broker's replication default applies (one on the local broker, the cluster's
    default elsewhere). A cluster node that is down but still in the metadata (until the controller fences it)
    does not fail the call: kafka-python sends each request to a random node and raises when that one refuses
    the connection; the request is then sent again, and the refused node is in back-off, so another one answers.
    """
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaConnectionError, NodeNotReadyError, TopicAlreadyExistsError

    def again(call: Callable[[], Any]) -> Any:
        for _ in range(_ADMIN_ATTEMPTS - 1):
            try:
                return call()
            except (KafkaConnectionError, NodeNotReadyError):
                time.sleep(_ADMIN_RETRY_S)
        return call()  # the last attempt's error is the caller's

    admin = KafkaAdminClient(request_timeout_ms=10_000, client_id="retail-admin", **client_options)
    try:
        existing = set(again(admin.list_topics))
        missing = [
            NewTopic(spec.name, num_partitions=spec.partitions, replication_factor=-1, topic_configs=spec.configs)
            for spec in specs
            if spec.name not in existing
        ]
        if missing:
            # another caller may win the race (or an attempt whose answer was lost): the topic then exists,
            # which is what we wanted
            with contextlib.suppress(TopicAlreadyExistsError):
                again(lambda: admin.create_topics(missing))
        described = again(admin.describe_topics)
    finally:
        admin.close()
    return {
        topic["name"]: len(topic["partitions"])
        for topic in described
        if not topic.get("is_internal") and not topic["name"].startswith("__")
    }
