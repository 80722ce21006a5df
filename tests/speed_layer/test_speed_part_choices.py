"""`retail speed --part` takes the documented parts only, and says so before any Spark session starts."""

from __future__ import annotations

import pytest

from retail_cli.main import build_parser
from speed_layer.job import run


def test_one_driver_is_the_default_of_retail_speed() -> None:
    assert build_parser().parse_args(["speed"]).part == "one"


def test_an_unknown_part_is_refused_before_spark_starts(settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="part must be one of"):
        run(settings, part="bronze")
