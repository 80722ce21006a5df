"""`retail cluster spark|kafka up|down|status`: the local Spark standalone and Kafka clusters (docs/scale-out.md).

The single-node defaults (`make up`, Spark ``local[2]``) stay as they are; these clusters are what a user who
outgrows one machine moves to, here with every node on 127.0.0.1. ``up`` prints the settings that point the
pipeline at the cluster; nothing else changes.
"""

from __future__ import annotations

from contracts.settings import Settings

__all__ = ["cluster_command"]


def _spark(settings: Settings, action: str) -> int:
    from infra.spark_cluster import SparkStandalone

    cluster = SparkStandalone.from_settings(settings)
    if action == "down":
        stopped = cluster.stop()
        print("spark cluster stopped: " + ", ".join(stopped) if stopped else "spark cluster was not running")
        return 0
    if action == "up":
        print(f"starting Spark standalone: master {cluster.master_url}, {len(cluster.worker_ports)} workers ...")
        seconds = cluster.start()
        print("spark cluster ready" + (f" after {seconds:.1f}s" if seconds else " (already running)"))
    print(cluster.describe())
    if cluster.pids():
        print(
            "run the pipeline on it:\n"
            f"  export RETAIL_SPARK_MASTER={cluster.master_url}"
            f"  # executors take RETAIL_SPARK_EXECUTOR_MEMORY (<= {cluster.worker_memory})\n"
            f"  export AIRFLOW_CONN_{settings.airflow_spark_conn_id.upper()}="
            f'\'{{"conn_type": "spark", "host": "{cluster.master_url}"}}\'  # for make airflow'
        )
    return 0 if cluster.pids() or action == "status" else 1


def _kafka(settings: Settings, action: str) -> int:
    from contracts.topics import pipeline_topics
    from infra.kafka_broker import KafkaCluster

    cluster = KafkaCluster.from_settings(settings)
    if action == "down":
        stopped = cluster.stop()
        print(f"kafka cluster stopped: nodes {stopped}" if stopped else "kafka cluster was not running")
        return 0
    if action == "up":
        print(f"starting a {len(cluster.nodes)}-node Kafka cluster (KRaft) on {cluster.bootstrap_servers} ...")
        seconds = cluster.start()
        print("kafka cluster ready" + (f" after {seconds:.1f}s" if seconds else " (already running)"))
        topic_settings = settings.model_copy(update={"kafka_bootstrap_servers": cluster.bootstrap_servers})
        topics = cluster.ensure_topics(pipeline_topics(topic_settings))
        print("topics: " + ", ".join(f"{name} ({parts} partitions)" for name, parts in sorted(topics.items())))
    print(cluster.describe())
    running = any(node.pid() is not None for node in cluster.nodes)
    if running:
        print(f"run the pipeline on it:\n  export RETAIL_KAFKA_BOOTSTRAP_SERVERS={cluster.bootstrap_servers}")
    return 0 if running or action == "status" else 1


def cluster_command(settings: Settings, kind: str, action: str) -> int:
    """``kind`` spark or kafka, ``action`` up, down or status; returns the exit code."""
    if kind == "spark":
        return _spark(settings, action)
    if kind == "kafka":
        return _kafka(settings, action)
    raise ValueError(f"cluster must be spark or kafka, got {kind!r}")
