"""What the local clusters are made of, checked without starting them: the Kafka nodes' rendered configs and the
Spark daemons' command lines (the cluster tests in tests/scale_out start them for real)."""

from __future__ import annotations

from pathlib import Path

from contracts.settings import Settings
from infra.kafka_broker import KafkaCluster, LocalKafka
from infra.spark_cluster import SparkStandalone


def _properties(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_one_node_stays_a_standalone_quorum_with_one_replica(tmp_path: Path) -> None:
    node = LocalKafka("127.0.0.1", 9092, 9093, tmp_path / "k", tmp_path / "jars")
    props = _properties(node._render_config())
    assert props["node.id"] == "1"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:9093"
    assert "controller.quorum.voters" not in props
    assert props["default.replication.factor"] == props["offsets.topic.replication.factor"] == "1"
    assert props["min.insync.replicas"] == "1"


def test_three_nodes_share_a_voter_set_and_replicate_three_times(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, kafka_cluster_data_dir=tmp_path / "kc", jar_cache=tmp_path / "jars")
    cluster = KafkaCluster.from_settings(settings)
    assert cluster.bootstrap_servers == "127.0.0.1:9192,127.0.0.1:9193,127.0.0.1:9194"
    assert settings.kafka_cluster_bootstrap_servers() == cluster.bootstrap_servers
    voters = "1@127.0.0.1:9292,2@127.0.0.1:9293,3@127.0.0.1:9294"
    for node in cluster.nodes:
        props = _properties(node._render_config())
        assert props["node.id"] == str(node.node_id)
        assert props["process.roles"] == "broker,controller"
        assert props["controller.quorum.voters"] == voters
        assert props["listeners"] == f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}"
        for key in (
            "default.replication.factor",
            "offsets.topic.replication.factor",
            "transaction.state.log.replication.factor",
            "share.coordinator.state.topic.replication.factor",
        ):
            assert props[key] == "3", key
        for key in ("min.insync.replicas", "transaction.state.log.min.isr", "share.coordinator.state.topic.min.isr"):
            assert props[key] == "2", key
        assert props["unclean.leader.election.enable"] == "false"
        assert node.data_dir == tmp_path / "kc" / f"node-{node.node_id}"
    assert cluster.describe().count("stopped") == 3


def test_spark_daemons_bind_loopback_with_small_memory_and_no_rest_server(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, spark_cluster_dir=tmp_path / "sc")
    cluster = SparkStandalone.from_settings(settings)
    assert cluster.master_url == settings.spark_cluster_master_url() == "spark://127.0.0.1:7077"
    assert cluster.daemons == ["master", "worker-1", "worker-2"]
    master = cluster._command("master")
    assert master[1] == "org.apache.spark.deploy.master.Master" and master[0].endswith("bin/spark-class")
    assert master[master.index("--host") + 1] == "127.0.0.1" and master[master.index("--webui-port") + 1] == "8081"
    worker = cluster._command("worker-2")
    assert worker[1] == "org.apache.spark.deploy.worker.Worker" and worker[-1] == "spark://127.0.0.1:7077"
    assert [worker[worker.index(flag) + 1] for flag in ("--port", "--webui-port", "--cores", "--memory")] == [
        "7079",
        "8083",
        "1",
        "1g",
    ]
    env = cluster._env()
    assert env["SPARK_LOCAL_IP"] == "127.0.0.1"  # executors inherit it from their worker
    assert env["SPARK_DAEMON_MEMORY"] == "256m"
    assert "-Dspark.master.rest.enabled=false" in env["SPARK_MASTER_OPTS"]
    assert cluster.describe().startswith("spark cluster: stopped")
