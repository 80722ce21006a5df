"""The local JVM jar cache that `make setup` fills from Maven Central (see infra/maven/)."""

from __future__ import annotations

from pathlib import Path

from contracts.errors import SetupError

__all__ = ["jar_files"]


def jar_files(jar_cache: Path, group: str) -> list[Path]:
    """The cached jars of one group: ``spark`` (Delta + Kafka source), ``kafka`` (broker + tools) or ``project``
    (the project's own JVM classes, built by infra/build_jvm.py).

    Raises SetupError naming the folder when the cache is empty, so a missing `make setup` is obvious.
    """
    if group not in ("spark", "kafka", "project"):
        raise ValueError(f"group must be 'spark', 'kafka' or 'project', got {group!r}")
    folder = jar_cache / group
    jars = sorted(folder.glob("*.jar"))
    if not jars:
        raise SetupError(f"no jars in {folder}: run `make setup` to fetch them from Maven Central")
    return jars
