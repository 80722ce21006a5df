"""`retail speed --part` takes the documented parts only, and says so before any Spark session starts."""

from __future__ import annotations

import pytest

from retail_cli.main import build_parser
from speed_layer.job import PARTS, default_part, run


def test_the_default_part_is_split_on_a_local_master_and_one_on_a_cluster(settings) -> None:  # type: ignore[no-untyped-def]
    assert build_parser().parse_args(["speed"]).part is None  # run() chooses
    assert default_part(settings.model_copy(update={"spark_master": "local[2]"})) == "split"
    assert default_part(settings.model_copy(update={"spark_master": "spark://10.0.0.5:7077"})) == "one"
    assert default_part(settings.model_copy(update={"spark_master": "k8s://https://api:6443"})) == "one"


def test_an_unknown_part_is_refused_before_spark_starts(settings) -> None:  # type: ignore[no-untyped-def]
    # the CLI spells the parts out (it imports no Spark code to build its parser): it takes every part of the job
    assert [build_parser().parse_args(["speed", "--part", part]).part for part in PARTS] == list(PARTS)
    with pytest.raises(ValueError, match="part must be one of"):
        run(settings, part="bronze")
