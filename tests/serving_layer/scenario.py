"""One crafted day of sales shared by the Delta, API and CLI tests of the serving layer (UTC).

A batch run validated 2026-01-05 with W = 2026-01-06T00:00. The speed layer missed one late purchase at 23:58
(the batch has it) and holds purchases after W. A later batch run rewrote the views and then failed: its rows
must never be served. Inventory, alerts and progress rows give the health and inventory endpoints content.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.serving_layer.lake_builder import LakeBuilder, purchase, view

D = datetime(2026, 1, 5, tzinfo=UTC)
W = D + timedelta(days=1)
AT = W - timedelta(hours=2)  # 22:00 on the 5th
NOW = W + timedelta(hours=1)  # the clock of tests that need one


def at(minutes: float) -> datetime:
    return AT + timedelta(minutes=minutes)


EVENTS = [
    purchase(1, at(0.5), "u1", "p-1", "toys", 2, "10.00"),  # 22:00
    purchase(2, at(75.2), "u2", "p-2", "books", 1, "5.55"),  # 23:15
    view(3, at(75.9), "u3", "p-1", "toys"),
    purchase(4, at(119.5), "u4", "p-1", "toys", 1, "1.01"),  # 23:59, last minute before W
    purchase(5, at(120.1), "u5", "p-2", "books", 3, "2.50"),  # 00:00, the bucket starting at W
    purchase(6, at(121.0), "u1", "p-1", "toys", 1, "0.99"),  # 00:01
    view(7, at(150.0), "u6", "p-2", "books"),  # 00:30
]
LATE = purchase(8, at(118.0), "u7", "p-2", "books", 1, "100.00")  # 23:58, after the speed watermark


def build(builder: LakeBuilder) -> LakeBuilder:
    builder.merge_speed_minutes(EVENTS)
    builder.write_batch([e for e in [*EVENTS, LATE] if e.event_time < W], "run-2026-01-05", (D, W), W)
    doubled = [purchase(90 + i, e.event_time, "x", e.product_id, e.category, 2, "99.99") for i, e in enumerate(EVENTS)]
    builder.write_batch(doubled, "run-2026-01-06", (W, W + timedelta(days=1)), W + timedelta(days=1), "failed")
    builder.overwrite(
        "speed/inventory",
        [
            {
                "product_id": "p-1",
                "stock": 3,
                "threshold": 10,
                "below_threshold": True,
                "last_event_time": at(121.0),
                "updated_at": at(122),
            },
            {
                "product_id": "p-2",
                "stock": 50,
                "threshold": 10,
                "below_threshold": False,
                "last_event_time": at(120.1),
                "updated_at": at(122),
            },
        ],
    )
    builder.overwrite(
        "speed/alerts",
        [
            {
                "alert_id": "a-open",
                "product_id": "p-1",
                "kind": "low_stock",
                "stock_at_open": 9,
                "threshold": 10,
                "opened_at": at(60),
                "resolved_at": None,
            },
            {
                "alert_id": "a-recent",
                "product_id": "p-2",
                "kind": "low_stock",
                "stock_at_open": 4,
                "threshold": 10,
                "opened_at": at(10),
                "resolved_at": at(30),
            },
            {
                "alert_id": "a-old",
                "product_id": "p-2",
                "kind": "low_stock",
                "stock_at_open": 1,
                "threshold": 10,
                "opened_at": D - timedelta(days=3),
                "resolved_at": D - timedelta(days=2),
            },
        ],
    )
    progress = [
        {
            "query": query,
            "batch_id": batch,
            "run_id": "r",
            "timestamp": at(minute),
            "input_rows": 10,
            "input_rows_per_s": 5.0,
            "processed_rows_per_s": 6.0,
            "batch_duration_ms": 900,
            "watermark": at(minute - 10),
            "offsets_behind": behind,
            "late_rows": 0,
            "durations": "{}",
            "error": None,
        }
        for query, batch, minute, behind in (("rollups", 1, 120, 40), ("rollups", 2, 122, 7), ("inventory", 5, 121, 2))
    ]
    builder.overwrite("speed/progress", progress)
    return builder
