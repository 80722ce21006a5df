"""Fetch the JVM artifacts into the local jar cache (var/cache/jars/<group>), once; later runs are offline.

Usage: python infra/fetch_jars.py [--cache DIR] [--group NAME ...]

Each group under infra/maven/<group>/pom.xml is resolved by Maven (runtime closure). For the groups that join
Spark's classpath (``spark``, ``s3``), jars whose artifact pyspark already ships are dropped, so the Spark
classpath has one version of each library. A group is fetched again only when its pom changes. If Maven cannot
fetch an artifact, this prints one line naming it and exits 1.

`make setup` fetches ``spark`` and ``kafka``. The ``s3`` group (Hadoop's S3A connector + the AWS SDK modules it
needs, for a lake on s3a://) is fetched only by `make setup-s3` (``--group s3``), and only with a hadoop-aws
version equal to the Hadoop inside pyspark.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ("spark", "kafka")  # what `make setup` fetches
OPTIONAL_GROUPS = ("s3",)  # fetched on request only (--group s3)
# groups whose jars join the Spark classpath next to pyspark's own
_SPARK_CLASSPATH_GROUPS = ("spark", "s3")
# provided by pyspark under another artifact name, or a duplicate of classes pyspark has (jcl-over-slf4j)
SPARK_EXTRA_EXCLUDES = {"commons-logging", "shims"}
_VERSIONED_JAR = re.compile(r"^(?P<artifact>.+?)-\d[\w.\-]*\.jar$")


def _artifact(jar_name: str) -> str:
    match = _VERSIONED_JAR.match(jar_name)
    return match.group("artifact") if match else jar_name


def _pyspark_artifacts() -> set[str]:
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    return {_artifact(path.name) for path in jars.glob("*.jar")}


def _pyspark_hadoop_version() -> str | None:
    import pyspark

    for jar in (Path(pyspark.__file__).parent / "jars").glob("hadoop-client-api-*.jar"):
        return jar.name.removeprefix("hadoop-client-api-").removesuffix(".jar")
    return None


def _check_hadoop_version(pom: Path) -> None:
    """hadoop-aws must match the Hadoop inside pyspark, or S3A fails at run time with missing methods."""
    match = re.search(r"<hadoop\.version>([^<]+)</hadoop\.version>", pom.read_text())
    shipped = _pyspark_hadoop_version()
    if match and shipped and match.group(1) != shipped:
        sys.exit(
            f"setup: {pom.relative_to(ROOT)} asks for hadoop-aws {match.group(1)} but pyspark ships Hadoop {shipped}; "
            "set <hadoop.version> to the same version"
        )


def _missing_artifact(maven_output: str) -> str:
    for pattern in (
        r"Could not find artifact (\S+)",
        r"could not be resolved: (\S+?)[,:]? ",
        r"artifact (\S+) ",
    ):
        match = re.search(pattern, maven_output)
        if match:
            return match.group(1)
    lines = [line for line in maven_output.splitlines() if "ERROR" in line]
    return lines[0] if lines else maven_output.strip()[-300:]


def fetch_group(group: str, cache: Path) -> int:
    pom = ROOT / "infra" / "maven" / group / "pom.xml"
    target = cache / group
    stamp = target / ".pom.sha256"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and any(target.glob("*.jar")):
        count = len(list(target.glob("*.jar")))
        print(f"  jars/{group}: up to date ({count} jars)")
        return count
    if shutil.which("mvn") is None:
        sys.exit("setup: Maven (mvn) not found; install it (apt-get install maven) and rerun make setup")
    if group == "s3":
        _check_hadoop_version(pom)
    print(f"  jars/{group}: resolving {pom.relative_to(ROOT)} from Maven Central ...", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"jars-{group}-") as tmp:
        result = subprocess.run(
            [
                "mvn",
                "-B",
                "-q",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={tmp}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            artifact = _missing_artifact(result.stdout + result.stderr)
            sys.exit(f"setup: cannot fetch {artifact} from Maven Central (group {group}); see mvn output above")
        jars = sorted(Path(tmp).glob("*.jar"))
        if group in _SPARK_CLASSPATH_GROUPS:
            shipped = _pyspark_artifacts() | SPARK_EXTRA_EXCLUDES
            jars = [jar for jar in jars if _artifact(jar.name) not in shipped]
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for jar in jars:
            shutil.copy2(jar, target / jar.name)
    stamp.write_text(digest)
    size_mb = sum(jar.stat().st_size for jar in target.glob("*.jar")) / 1e6
    print(f"  jars/{group}: {len(jars)} jars, {size_mb:.1f} MB in {target} ({time.monotonic() - started:.1f}s)")
    return len(jars)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=ROOT / "var" / "cache" / "jars")
    parser.add_argument(
        "--group",
        action="append",
        choices=[*GROUPS, *OPTIONAL_GROUPS],
        help=f"fetch only this group (repeatable); default: {', '.join(GROUPS)}",
    )
    args = parser.parse_args()
    for group in args.group or GROUPS:
        fetch_group(group, args.cache)


if __name__ == "__main__":
    main()
