"""`retail speed` runs one driver unless asked for two (`--part split`)."""

from __future__ import annotations

import pytest

from speed_layer.job import default_part, run


@pytest.mark.parametrize(
    ("master", "part"),
    [("local[2]", "one"), ("local[*]", "one"), ("spark://10.0.0.5:7077", "one"), ("k8s://https://api:6443", "one")],
)
def test_the_default_part_follows_the_master(settings, master: str, part: str) -> None:  # type: ignore[no-untyped-def]
    assert default_part(settings.model_copy(update={"spark_master": master})) == part


def test_an_unknown_part_is_refused_before_spark_starts(settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="part must be one of"):
        run(settings, part="bronze")
