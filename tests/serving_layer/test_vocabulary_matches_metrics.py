"""The serving layer restates the metric vocabulary (to stay Spark-free); it must match contracts.metrics."""

from __future__ import annotations

from typing import get_args

from contracts import metrics
from serving_layer import views


def test_grains_dimensions_keys_and_sketch_size_match() -> None:
    assert tuple(metrics.GRAINS) == views.GRAINS
    assert views.DIMENSIONS == metrics.DIMENSIONS
    assert views.TOTAL_KEY == metrics.TOTAL_KEY
    assert views.HLL_LG_CONFIG_K == metrics.HLL_LG_CONFIG_K
    assert get_args(views.Grain) == get_args(metrics.Grain)
