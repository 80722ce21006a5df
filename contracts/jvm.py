"""Class-data-sharing archives: faster JVM starts for Spark drivers, executors and Kafka brokers.

A JVM spends most of its first seconds loading and verifying classes (Spark's driver loads ~20,000 before its first
query). ``make setup`` runs each kind of JVM once with ``-XX:ArchiveClassesAtExit`` (infra/jvm_archive.py); later
JVMs of the same kind map that archive instead of parsing the classes again. Measured on the 2-core box: docs/
design.md, "Test suite".

An archive is valid only for the JVM build and the class path it was made with, so its file name carries a digest
of both: after a JDK or pyspark upgrade no archive matches and JVMs simply start without one (``make setup`` builds
a new one). A JVM that cannot use an archive falls back to loading classes itself; its CDS warnings are turned off
so such a fallback never reaches a user's terminal or a job's log. Delete ``var/cache/jars/cds`` to go without.

Example::

    options = share_options(spark_archive(settings.jar_cache))   # [] when no archive was built
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from contracts.errors import SetupError
from contracts.jars import jar_files

__all__ = [
    "ARCHIVE_FOLDER",
    "archive_path",
    "java_binary",
    "kafka_archive",
    "share_options",
    "spark_archive",
    "spark_home",
]

ARCHIVE_FOLDER = "cds"


def java_binary() -> Path | None:
    """The ``java`` that Spark's launcher and the broker start: ``$JAVA_HOME/bin/java``, else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    found = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    return Path(found).resolve() if found and Path(found).exists() else None


def spark_home() -> Path:
    """The pyspark package folder (Spark's ``jars/``), found without importing pyspark."""
    import importlib.util

    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise SetupError("pyspark is not installed in this environment: run `make setup`")
    return Path(next(iter(spec.submodule_search_locations)))


def archive_path(jar_cache: Path, kind: str, classpath: Sequence[Path]) -> Path | None:
    """Where the archive of ``kind`` for this JVM build and ``classpath`` lives (None without a java)."""
    java = java_binary()
    if java is None:
        return None
    digest = hashlib.sha256()
    digest.update(f"{java}\0{java.stat().st_size}\0{java.stat().st_mtime_ns}".encode())
    for entry in classpath:
        digest.update(f"\0{entry.name}".encode())
    return jar_cache / ARCHIVE_FOLDER / f"{kind}-{digest.hexdigest()[:16]}.jsa"


def spark_archive(jar_cache: Path) -> Path | None:
    """The archive of Spark JVMs (drivers, executors, standalone daemons): pyspark's ``jars/`` is their class path."""
    return archive_path(jar_cache, "spark", sorted((spark_home() / "jars").glob("*.jar")))


def kafka_archive(jar_cache: Path) -> Path | None:
    """The archive of Kafka broker JVMs (class path: the cached ``kafka`` jar group)."""
    return archive_path(jar_cache, "kafka", jar_files(jar_cache, "kafka"))


def share_options(archive: Path | None) -> list[str]:
    """JVM options that map ``archive`` when it exists (else none); a JVM that cannot use it starts without it."""
    if archive is None or not archive.is_file():
        return []
    return [f"-XX:SharedArchiveFile={archive}", "-Xshare:auto", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]
