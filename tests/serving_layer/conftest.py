"""Fixtures of the serving-layer tests: the crafted scenario lake, written once per run with Spark."""

from __future__ import annotations

import pytest

from tests.serving_layer import scenario
from tests.serving_layer.lake_builder import LakeBuilder


@pytest.fixture(scope="session")
def scenario_lake(spark, test_root) -> LakeBuilder:  # type: ignore[no-untyped-def]
    """The scenario of tests/serving_layer/scenario.py in real Delta tables (read-only for tests)."""
    return scenario.build(LakeBuilder(spark, str(test_root / "serving_scenario_lake")))
