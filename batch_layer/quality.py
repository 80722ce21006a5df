"""Great Expectations 1.x gates of the batch layer: the input suite on bronze, the view suite on the results.

``great_expectations`` costs about 8 s to import, so it is imported inside the functions that need it, never at
module top (the speed layer and the dashboard must not pay for it). Analytics are switched off.

Each suite validates one Spark DataFrame (GE validates one batch of one table): cross-table rules are spelled
out as columns first (``transforms.bronze_checks``, ``transforms.view_checks``) or as a difference frame
(``transforms.reconciliation_diff``) that must be all zeros.

Example::

    report = validate_bronze(checks_df)          # SuiteReport; report.success, report.summary(), report.full
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame

from contracts.events import MAX_UNIT_PRICE, EventType

__all__ = ["PANDAS_MAX_ROWS", "SuiteReport", "validate_bronze", "validate_views", "validate_reconciliation"]

# frames up to this many rows are validated with GE's pandas engine (see _run)
PANDAS_MAX_ROWS = 200_000
_FLAGS_INPUT = ("quantity_ok", "user_ok", "price_ok", "not_in_future", "event_date_ok")


@dataclass
class SuiteReport:
    """The outcome of one suite: success, the names of failed expectations, and GE's full JSON result."""

    suite: str
    success: bool
    evaluated: int
    engine: str = "spark"
    rows: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    full: dict[str, Any] = field(default_factory=dict)

    def failed_names(self) -> list[str]:
        return [
            f"{item['expectation']}({item.get('column') or ','.join(item.get('columns') or [])})"
            for item in self.failed
        ]

    def summary(self) -> dict[str, Any]:
        """A compact JSON-able summary (kept in batch/runs.validation_report)."""
        return {
            "suite": self.suite,
            "success": self.success,
            "evaluated": self.evaluated,
            "engine": self.engine,
            "rows": self.rows,
            "failed": self.failed,
        }


def _gx():  # type: ignore[no-untyped-def]
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    return gx, gxe, ProgressBarsConfig


def _run(suite_name: str, frame: DataFrame, expectations: list[Any], pandas_max_rows: int) -> SuiteReport:
    gx, _gxe, progress_bars = _gx()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = progress_bars(globally=False, metric_calculations=False)
    suite = gx.ExpectationSuite(name=suite_name)
    for expectation in expectations:
        suite.add_expectation(expectation)
    cached = frame.cache()
    try:
        rows = cached.count()
        # GE's Spark engine runs several Spark jobs per expectation (about 1 s each on 2 busy cores, whatever
        # the size); a frame small enough for memory is validated by GE's pandas engine instead, in about 1 s.
        # Both are the same expectations; large intervals stay on Spark, so nothing is collected that would
        # not fit.
        if rows <= pandas_max_rows:
            source = context.data_sources.add_pandas(name="retail")
            data: Any = cached.toPandas()
            engine = "pandas"
        else:
            source = context.data_sources.add_spark(name="retail")
            data = cached
            engine = "spark"
        batch_definition = source.add_dataframe_asset(name=suite_name).add_batch_definition_whole_dataframe("run")
        result = batch_definition.get_batch(batch_parameters={"dataframe": data}).validate(suite)
    finally:
        cached.unpersist()
    full = json.loads(json.dumps(result.to_json_dict(), default=str))
    failed = []
    for item in full.get("results", []):
        if item.get("success"):
            continue
        kwargs = item["expectation_config"]["kwargs"]
        details = item.get("result") or {}
        failed.append(
            {
                "expectation": item["expectation_config"]["type"],
                "column": kwargs.get("column"),
                "columns": kwargs.get("column_list"),
                "unexpected_count": details.get("unexpected_count"),
                "partial_unexpected_list": (details.get("partial_unexpected_list") or [])[:5],
                "observed_value": details.get("observed_value"),
                "exception": (item.get("exception_info") or {}).get("exception_message"),
            }
        )
    return SuiteReport(
        suite=suite_name,
        engine=engine,
        rows=rows,
        success=bool(full.get("success")),
        evaluated=int((full.get("statistics") or {}).get("evaluated_expectations", 0)),
        failed=failed,
        full=full,
    )


def validate_bronze(checks: DataFrame, pandas_max_rows: int = PANDAS_MAX_ROWS) -> SuiteReport:
    """The input suite on the interval's bronze rows (the output of ``transforms.bronze_checks``).

    Keys not null; event_type one of the contract's; unit_price in [0, MAX_UNIT_PRICE]; quantity in
    [1, MAX_QUANTITY] where the type carries one;
    user_id present where required; a purchase has a price; event time not in the future (beyond the allowed
    clock skew); each row sits in the partition of its event date.
    """
    _gx_module, gxe, _ = _gx()
    expectations = [
        gxe.ExpectColumnValuesToNotBeNull(column=name)
        for name in ("event_id", "event_type", "event_time", "product_id")
    ]
    expectations += [
        gxe.ExpectColumnValuesToBeInSet(column="event_type", value_set=[e.value for e in EventType]),
        gxe.ExpectColumnValuesToBeBetween(column="unit_price", min_value=0, max_value=float(MAX_UNIT_PRICE)),
    ]
    expectations += [gxe.ExpectColumnValuesToBeInSet(column=flag, value_set=[True]) for flag in _FLAGS_INPUT]
    return _run("bronze_input", checks, expectations, pandas_max_rows)


def validate_views(checks: DataFrame, pandas_max_rows: int = PANDAS_MAX_ROWS) -> SuiteReport:
    """The view suite on all grains at once (the output of ``transforms.view_checks``).

    No negative revenue, orders or units, and none NULL (a bucket whose revenue overflowed DECIMAL(18,2) has a
    NULL revenue: contracts.metrics); at least one user per bucket; keys not null; one row per
    (grain, bucket_start, dimension, key); every bucket exactly one grain long and aligned.
    """
    _gx_module, gxe, _ = _gx()
    expectations = [
        gxe.ExpectColumnValuesToNotBeNull(column=name)
        for name in ("bucket_start", "dimension", "key", "revenue", "orders", "units")
    ]
    expectations += [
        gxe.ExpectColumnValuesToBeBetween(column="revenue", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="orders", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="units", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="distinct_users", min_value=1),
        gxe.ExpectColumnValuesToBeInSet(column="dimension", value_set=["total", "product", "category"]),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["grain", "bucket_start", "dimension", "key"]),
        gxe.ExpectColumnValuesToBeInSet(column="bucket_ok", value_set=[True]),
    ]
    return _run("batch_views", checks, expectations, pandas_max_rows)


def validate_reconciliation(diff: DataFrame, pandas_max_rows: int = PANDAS_MAX_ROWS) -> SuiteReport:
    """The reconciliation suite: every difference between view sums and bronze totals is exactly zero (and not
    NULL: a sum that overflowed its type is NULL, and "between" alone would let it pass)."""
    _gx_module, gxe, _ = _gx()
    diffs = ("revenue_diff", "orders_diff", "units_diff", "users_diff")
    expectations = [gxe.ExpectColumnValuesToBeBetween(column=name, min_value=0, max_value=0) for name in diffs]
    expectations += [gxe.ExpectColumnValuesToNotBeNull(column=name) for name in diffs]
    expectations.append(gxe.ExpectColumnValuesToNotBeNull(column="day"))
    return _run("views_reconcile_with_bronze", diff, expectations, pandas_max_rows)
