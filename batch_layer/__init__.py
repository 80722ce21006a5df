"""Batch layer: nightly exact recompute of the sales views from bronze, with data-quality gates.

Modules: ``interval`` (UTC-day intervals and the high-water-mark rule, pure Python), ``transforms`` (pure
DataFrame functions: deduplication, views, reconciliation), ``quality`` (Great Expectations suites),
``store`` (Delta reads and writes), ``maintenance`` (OPTIMIZE / VACUUM), ``job`` (the Spark entry point run by
``retail batch`` and by the Airflow DAG through spark-submit). The local Airflow that runs the DAG lives in
``infra.airflow_local``.
See docs/batch.md.
"""
