"""Great Expectations 1.x gates of the batch layer: the input suite on bronze, the view suite on the results, and
the reconciliation of the views with an independent computation from bronze.

``great_expectations`` costs about 8 s to import, so it is imported inside the functions that need it, never at
module top (the speed layer and the dashboard must not pay for it); the job imports it in a thread while the JVM
starts (``warm_up``). Analytics are switched off.

The input and view suites are row-level rules checked as aggregates: one Spark job counts, per rule, the rows
that break it (``Rule``), and GE validates that every count is 0 (equivalent for gating, one job whatever the
size; GE's Spark engine ran several jobs per expectation). Cross-table rules are spelled out as columns first
(``transforms.bronze_checks``, ``transforms.view_checks``). The reconciliation is a small difference frame
(``batch_layer.reconcile``) validated row by row with GE's pandas engine: every difference must be zero.

Example::

    report = validate_bronze(checks_df)          # SuiteReport; report.success, report.summary(), report.full
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from contracts.events import MAX_UNIT_PRICE, EventType

__all__ = [
    "PANDAS_MAX_ROWS",
    "Rule",
    "SuiteReport",
    "validate_bronze",
    "validate_views",
    "validate_reconciliation",
    "warm_up",
]

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


def warm_up() -> None:
    """Import Great Expectations now (about 8 s): the job does it in a thread while the JVM starts."""
    _gx()


def _gx():  # type: ignore[no-untyped-def]
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    return gx, gxe, ProgressBarsConfig


def _context():  # type: ignore[no-untyped-def]
    gx, _gxe, progress_bars = _gx()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = progress_bars(globally=False, metric_calculations=False)
    return gx, context


def _validate(suite_name: str, data: Any, expectations: list[Any], spark_engine: bool) -> dict[str, Any]:
    """Run one GE suite on a pandas (or, with ``spark_engine``, a Spark) DataFrame; GE's JSON result."""
    gx, context = _context()
    suite = gx.ExpectationSuite(name=suite_name)
    for expectation in expectations:
        suite.add_expectation(expectation)
    sources = context.data_sources
    source = sources.add_spark(name="retail") if spark_engine else sources.add_pandas(name="retail")
    batch_definition = source.add_dataframe_asset(name=suite_name).add_batch_definition_whole_dataframe("run")
    result = batch_definition.get_batch(batch_parameters={"dataframe": data}).validate(suite)
    return json.loads(json.dumps(result.to_json_dict(), default=str))


def _failed_items(full: dict[str, Any]) -> list[dict[str, Any]]:
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
    return failed


def _run(suite_name: str, frame: Any, expectations: list[Any], pandas_max_rows: int) -> SuiteReport:
    """Row-level suite: a pandas frame, or a Spark frame (validated by GE's pandas engine up to
    ``pandas_max_rows`` rows, by its Spark engine above)."""
    if isinstance(frame, DataFrame):
        cached = frame.cache()
        try:
            rows = cached.count()
            # GE's Spark engine runs several Spark jobs per expectation (about 1 s each on 2 busy cores, whatever
            # the size); a frame small enough for memory is validated by GE's pandas engine instead
            if rows <= pandas_max_rows:
                full = _validate(suite_name, cached.toPandas(), expectations, spark_engine=False)
                engine = "pandas"
            else:
                full = _validate(suite_name, cached, expectations, spark_engine=True)
                engine = "spark"
        finally:
            cached.unpersist()
    else:
        rows = len(frame)
        full = _validate(suite_name, frame, expectations, spark_engine=False)
        engine = "pandas"
    return SuiteReport(
        suite=suite_name,
        engine=engine,
        rows=rows,
        success=bool(full.get("success")),
        evaluated=int((full.get("statistics") or {}).get("evaluated_expectations", 0)),
        failed=_failed_items(full),
        full=full,
    )


@dataclass(frozen=True)
class Rule:
    """One row-level rule of a suite, checked as an aggregate: ``breaks`` is true on a row that breaks it.

    ``expectation`` and ``column`` name the row-level GE expectation the rule stands for (and appear in reports);
    the suite validates the count of breaking rows with ``expect_column_values_to_be_between(0, 0)``.
    """

    expectation: str
    column: str
    breaks: Callable[[], Column]
    columns: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        short = self.expectation.removeprefix("expect_column_values_to_").removeprefix("expect_")
        return f"{'__'.join(self.columns) or self.column}__{short}"


def _not_null(column: str) -> Rule:
    return Rule("expect_column_values_to_not_be_null", column, lambda: F.col(column).isNull())


def _between(column: str, low: Any = None, high: Any = None) -> Rule:
    def breaks() -> Column:
        value = F.col(column)
        out = F.lit(False)
        if low is not None:
            out = out | (value < F.lit(low))
        if high is not None:
            out = out | (value > F.lit(high))
        return F.coalesce(out, F.lit(False))  # NULL is not checked here (GE's between skips missing values)

    return Rule("expect_column_values_to_be_between", column, breaks)


def _in_set(column: str, values: list[Any]) -> Rule:
    return Rule(
        "expect_column_values_to_be_in_set",
        column,
        lambda: F.coalesce(~F.col(column).isin(values), F.lit(False)),
    )


def _aggregate_suite(suite_name: str, frame: DataFrame, rules: list[Rule], unique: tuple[str, ...] = ()) -> SuiteReport:
    """Validate row-level rules in one Spark job: count the rows breaking each rule, then let GE check on that one
    row that every count is 0. Equivalent to the row-level expectations for gating, whatever the frame's size;
    on failure a few offending values are fetched for the report (extra jobs only then)."""
    _gx_module, gxe, _ = _gx()
    counts = [F.count(F.when(rule.breaks(), 1)).alias(rule.name) for rule in rules]
    unique_rule = None
    if unique:
        unique_rule = Rule("expect_compound_columns_to_be_unique", "", lambda: F.lit(False), columns=unique)
        # rows beyond the first of each key (0 when every key is unique)
        counts.append(
            (F.count(F.lit(1)) - F.count_distinct(F.struct(*[F.col(c) for c in unique]))).alias(unique_rule.name)
        )
    row = frame.agg(F.count(F.lit(1)).alias("_rows"), *counts).first()
    values = row.asDict() if row else {}
    import pandas as pd

    names = [rule.name for rule in rules] + ([unique_rule.name] if unique_rule else [])
    data = pd.DataFrame([{name: int(values.get(name) or 0) for name in names}])
    full = _validate(
        suite_name,
        data,
        [gxe.ExpectColumnValuesToBeBetween(column=name, min_value=0, max_value=0) for name in names],
        spark_engine=False,
    )
    failed = []
    for rule in [*rules, *([unique_rule] if unique_rule else [])]:
        broken = int(values.get(rule.name) or 0)
        if not broken:
            continue
        if rule.columns:
            sample_rows = (
                frame.groupBy(*rule.columns).count().where(F.col("count") > 1).drop("count").limit(5).collect()
            )
            sample = [list(r) for r in sample_rows]
        else:
            sample = [r[0] for r in frame.where(rule.breaks()).select(rule.column).limit(5).collect()]
        failed.append(
            {
                "expectation": rule.expectation,
                "column": rule.column or None,
                "columns": list(rule.columns) or None,
                "unexpected_count": broken,
                "partial_unexpected_list": json.loads(json.dumps(sample, default=str)),
                "observed_value": None,
                "exception": None,
            }
        )
    success = bool(full.get("success")) and not failed
    return SuiteReport(
        suite=suite_name,
        engine="aggregate",
        rows=int(values.get("_rows") or 0),
        success=success,
        evaluated=int((full.get("statistics") or {}).get("evaluated_expectations", 0)),
        failed=failed,
        full={"counts": {name: int(values.get(name) or 0) for name in names}, "ge": full},
    )


def validate_bronze(checks: DataFrame, pandas_max_rows: int = PANDAS_MAX_ROWS) -> SuiteReport:
    """The input suite on the interval's bronze rows (the output of ``transforms.bronze_checks``).

    Keys not null; event_type one of the contract's; unit_price in [0, MAX_UNIT_PRICE]; quantity in
    [1, MAX_QUANTITY] where the type carries one; user_id present where required; a purchase has a price; event
    time not in the future (beyond the allowed clock skew); each row sits in the partition of its event date.
    Checked in one Spark job whatever the size (``pandas_max_rows`` is kept for callers; unused).
    """
    rules = [_not_null(name) for name in ("event_id", "event_type", "event_time", "product_id")]
    rules += [
        _in_set("event_type", [e.value for e in EventType]),
        _between("unit_price", 0, MAX_UNIT_PRICE),
    ]
    rules += [_in_set(flag, [True]) for flag in _FLAGS_INPUT]
    return _aggregate_suite("bronze_input", checks, rules)


def validate_views(checks: DataFrame, pandas_max_rows: int = PANDAS_MAX_ROWS) -> SuiteReport:
    """The view suite on all grains at once (the output of ``transforms.view_checks``).

    No negative revenue, orders or units, and none NULL (a bucket whose revenue overflowed DECIMAL(18,2) has a
    NULL revenue: contracts.metrics); at least one user per bucket; keys not null; one row per
    (grain, bucket_start, dimension, key); every bucket exactly one grain long and aligned. One Spark job.
    """
    rules = [_not_null(name) for name in ("bucket_start", "dimension", "key", "revenue", "orders", "units")]
    rules += [
        _between("revenue", 0),
        _between("orders", 0),
        _between("units", 0),
        _between("distinct_users", 1),
        _in_set("dimension", ["total", "product", "category"]),
        _in_set("bucket_ok", [True]),
    ]
    return _aggregate_suite("batch_views", checks, rules, unique=("grain", "bucket_start", "dimension", "key"))


def validate_reconciliation(diff: Any, pandas_max_rows: int = PANDAS_MAX_ROWS) -> SuiteReport:
    """The reconciliation suite: every difference between the views and the independent bronze totals is exactly
    zero (and not NULL: a sum that overflowed its type is NULL, and "between" alone would let it pass).

    ``diff``: a pandas frame (what the job's independent path gives) or a Spark frame; row level.
    """
    _gx_module, gxe, _ = _gx()
    diffs = ("revenue_diff", "orders_diff", "units_diff", "users_diff")
    expectations = [gxe.ExpectColumnValuesToBeBetween(column=name, min_value=0, max_value=0) for name in diffs]
    expectations += [gxe.ExpectColumnValuesToNotBeNull(column=name) for name in diffs]
    expectations.append(gxe.ExpectColumnValuesToNotBeNull(column="day"))
    return _run("views_reconcile_with_bronze", diff, expectations, pandas_max_rows)
