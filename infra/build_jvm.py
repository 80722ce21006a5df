"""Compile the project's own JVM classes (speed_layer/jvm/src) into var/cache/jars/project/retail-jvm.jar.

Usage: python infra/build_jvm.py [--cache DIR]

The speed layer's stateful inventory processor runs in the JVM (no Python worker on the latency path); it is
compiled with the machine's javac against pyspark's own jars, once, and again only when a source file changes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "speed_layer" / "jvm" / "src"
JAR_NAME = "retail-jvm.jar"


def _digest(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(SOURCES)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build(cache: Path) -> Path:
    """Compile when the sources changed; returns the jar's path."""
    import pyspark

    sources = sorted(SOURCES.rglob("*.java"))
    target = cache / "project"
    jar = target / JAR_NAME
    stamp = target / ".sources.sha256"
    digest = _digest(sources)
    if jar.exists() and stamp.exists() and stamp.read_text() == digest:
        print(f"  jars/project: {jar.name} up to date")
        return jar
    for tool in ("javac", "jar"):
        if shutil.which(tool) is None:
            sys.exit(f"build_jvm: {tool} not found: install a JDK 17+ (apt-get install openjdk-17-jdk-headless)")
    classpath = str(Path(pyspark.__file__).parent / "jars" / "*")
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as classes:
        compiled = subprocess.run(
            ["javac", "--release", "17", "-cp", classpath, "-d", classes, *map(str, sources)],
            capture_output=True,
            text=True,
        )
        if compiled.returncode != 0:
            sys.exit(f"build_jvm: javac failed:\n{compiled.stderr.strip()}")
        # written beside and renamed over: a JVM running with the old jar keeps reading its own (unlinked) file
        fresh = target / f".{JAR_NAME}.{os.getpid()}.tmp"
        subprocess.run(["jar", "cf", str(fresh), "-C", classes, "."], check=True)
        os.replace(fresh, jar)
    stamp.write_text(digest)
    print(f"  jars/project: built {jar} from {len(sources)} source file(s)")
    return jar


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=ROOT / "var" / "cache" / "jars")
    build(parser.parse_args().cache)


if __name__ == "__main__":
    main()
