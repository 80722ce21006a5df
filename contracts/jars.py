"""The local JVM jar cache that `make setup` fills from Maven Central (see infra/maven/)."""

from __future__ import annotations

from pathlib import Path

from contracts.errors import SetupError

__all__ = ["GROUPS", "jar_files"]

GROUPS: tuple[str, ...] = ("spark", "kafka", "project", "s3")


def jar_files(jar_cache: Path, group: str) -> list[Path]:
    """The cached jars of one group: ``spark`` (Delta + Kafka source), ``kafka`` (broker + tools), ``project``
    (the project's own JVM classes, built by infra/build_jvm.py) or ``s3`` (hadoop-aws + the AWS SDK modules it
    needs, fetched only by `make setup-s3`).

    Raises SetupError naming the folder when the cache is empty, so a missing `make setup` is obvious.
    """
    if group not in GROUPS:
        raise ValueError(f"group must be one of {', '.join(GROUPS)}, got {group!r}")
    folder = jar_cache / group
    jars = sorted(folder.glob("*.jar"))
    if not jars:
        target = "make setup-s3" if group == "s3" else "make setup"
        raise SetupError(f"no jars in {folder}: run `{target}` to fetch them from Maven Central")
    return jars
