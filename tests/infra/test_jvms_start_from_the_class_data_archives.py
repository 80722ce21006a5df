"""The JVMs start from the class-data archives `make setup` built (contracts/jvm.py, infra/jvm_archive.py): the
suite's own Spark driver and Kafka broker have their archive mapped, and an archive made for another JVM build or
class path is never handed to a JVM."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.jvm import archive_path, kafka_archive, share_options, spark_archive
from contracts.settings import Settings
from contracts.spark import spark_conf


def _mapped(pid: int) -> set[str]:
    """Files mapped into the address space of process ``pid``."""
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {line.split(maxsplit=5)[5] for line in lines if len(line.split(maxsplit=5)) == 6}


@pytest.mark.integration
def test_the_spark_driver_and_the_broker_map_their_archives(spark, kafka, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    spark_file, kafka_file = spark_archive(settings.jar_cache), kafka_archive(settings.jar_cache)
    assert spark_file is not None and spark_file.is_file(), "no Spark archive: `make setup` builds it"
    assert kafka_file is not None and kafka_file.is_file(), "no Kafka archive: `make setup` builds it"
    driver = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
    assert str(spark_file.resolve()) in _mapped(driver)
    assert str(kafka_file.resolve()) in _mapped(kafka.pid())


def test_no_archive_means_no_option_and_another_class_path_another_file(tmp_path: Path) -> None:
    assert share_options(None) == [] and share_options(tmp_path / "missing.jsa") == []
    one = archive_path(tmp_path, "spark", [Path("a.jar"), Path("b.jar")])
    other = archive_path(tmp_path, "spark", [Path("a.jar"), Path("c.jar")])
    assert one is not None and other is not None and one != other
    one.parent.mkdir(parents=True)
    one.write_bytes(b"x")
    assert share_options(one)[0] == f"-XX:SharedArchiveFile={one}"
    assert "-Xlog:cds=off" in share_options(one)  # a JVM that cannot use it says nothing to the user


def test_driver_and_executor_options_carry_the_archive_before_the_users(tmp_path: Path) -> None:
    for group in ("spark", "project"):
        (tmp_path / group).mkdir()
        (tmp_path / group / f"{group}.jar").write_bytes(b"")
    settings = Settings(_env_file=None, jar_cache=tmp_path)
    assert "spark.executor.extraJavaOptions" not in spark_conf(settings, "t")  # no archive: nothing added
    archive = spark_archive(tmp_path)
    assert archive is not None
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"x")
    user = {"spark.driver.extraJavaOptions": "-Dmine=1", "spark.executor.extraJavaOptions": "-Dtheirs=2"}
    conf = spark_conf(settings.model_copy(update={"spark_extra_conf": user}), "t")
    driver, executor = conf["spark.driver.extraJavaOptions"].split(), conf["spark.executor.extraJavaOptions"].split()
    assert driver[0] == "-Xss64m" and driver[1] == f"-XX:SharedArchiveFile={archive}" and driver[-1] == "-Dmine=1"
    assert executor[0] == f"-XX:SharedArchiveFile={archive}" and executor[-1] == "-Dtheirs=2"
