"""Fetch the JVM artifacts into the local jar cache (var/cache/jars/<group>), once; later runs are offline.

Usage: python infra/fetch_jars.py [--cache DIR]

Each group under infra/maven/<group>/pom.xml is resolved by Maven (runtime closure). For the ``spark`` group,
jars whose artifact pyspark already ships are dropped, so the Spark classpath has one version of each library.
A group is fetched again only when its pom changes. If Maven cannot fetch an artifact, this prints one line
naming it and exits 1.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ("spark", "kafka")
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
    print(f"  jars/{group}: resolving {pom.relative_to(ROOT)} from Maven Central ...", flush=True)
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
        if group == "spark":
            shipped = _pyspark_artifacts() | SPARK_EXTRA_EXCLUDES
            jars = [jar for jar in jars if _artifact(jar.name) not in shipped]
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for jar in jars:
            shutil.copy2(jar, target / jar.name)
    stamp.write_text(digest)
    print(f"  jars/{group}: {len(jars)} jars in {target}")
    return len(jars)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=ROOT / "var" / "cache" / "jars")
    args = parser.parse_args()
    for group in GROUPS:
        fetch_group(group, args.cache)


if __name__ == "__main__":
    main()
