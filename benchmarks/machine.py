"""What a benchmark ran on and what else ran beside it: the machine's description and the CPU of other processes.

Example::

    machine = describe()                 # CPU model, cores, RAM, OS, kernel, Java, Python, package versions
    with OtherLoad() as load:            # load average before/after, cores busy: ours vs everything else
        run_the_benchmark()
    load.result()                        # load before/after, cores: machine, ours, others, busiest others
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["OtherLoad", "describe", "load_average"]

PACKAGES = (
    "pyspark",
    "delta-spark",
    "deltalake",
    "pyarrow",
    "duckdb",
    "apache-airflow",
    "great-expectations",
    "dash",
    "fastapi",
    "uvicorn",
)


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _java() -> str:
    from contracts.settings import Settings

    java = Path(os.environ.get("JAVA_HOME", "")) / "bin" / "java"
    binary = str(java) if java.is_file() else "java"
    try:
        lines = subprocess.run([binary, "-version"], capture_output=True, text=True, check=False).stderr.splitlines()
    except OSError:
        return "no java"
    jars = Settings().jar_cache / "kafka"
    kafka = next((p.name[len("kafka-clients-") : -4] for p in jars.glob("kafka-clients-*.jar")), "?")
    return f"{lines[0] if lines else '?'}; Kafka {kafka}"


def describe() -> dict[str, Any]:
    """The machine and the software versions, as plain strings."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    memory_kb = int(
        next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    )
    os_name = platform.system()
    with contextlib.suppress(OSError):
        release = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
        os_name = release.get("PRETTY_NAME", os_name).strip('"')
    versions = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "os": os_name,
        "kernel": platform.release(),
        "java": _java(),
        "python": platform.python_version(),
        "packages": versions,
    }


def _tick() -> int:
    return os.sysconf("SC_CLK_TCK")


def _machine_busy_s() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / _tick()


def _processes() -> dict[int, tuple[int, str, float, int, int]]:
    """pid -> (parent pid, command name, CPU seconds, start tick, process group) of every process readable now."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.find("(") + 1 : text.rfind(")")]
        fields = text.rsplit(") ", 1)[-1].split()
        cpu_s = sum(int(v) for v in fields[11:13]) / _tick()
        found[int(stat.parent.name)] = (int(fields[1]), name, cpu_s, int(fields[19]), int(fields[2]))
    return found


class OtherLoad:
    """Samples every ``interval_s`` the CPU time of all processes; at the end splits the machine's busy cores into
    ours (this process, its descendants and the process groups ``groups()`` names: services a command started in
    the background are no descendants once it exits) and everybody else's, with the busiest other commands."""

    def __init__(self, interval_s: float = 2.0, groups: Callable[[], Iterable[int]] | None = None) -> None:
        self.interval_s = interval_s
        self._groups = groups
        self._first: dict[tuple[int, int], float] = {}
        self._last: dict[tuple[int, int], tuple[float, str, bool]] = {}
        self._baseline_taken = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="other-load", daemon=True)
        self._began = self._busy0 = 0.0
        self._ended = self._busy1 = 0.0
        self.load_before = self.load_after = ""

    def _sample(self) -> None:
        processes = _processes()
        own = os.getpid()
        ours: set[int] = {own}
        if self._groups is not None:
            groups = set(self._groups())
            ours.update(pid for pid, info in processes.items() if info[4] in groups)
        # descendants: walk parents until a known one (processes form a tree; a few levels at most)
        for pid in processes:
            chain, current = [], pid
            while current in processes and current not in ours and current > 1:
                chain.append(current)
                current = processes[current][0]
            if current in ours:
                ours.update(chain)
        for pid, (_, name, cpu, start, _group) in processes.items():
            key = (pid, start)
            # a process first seen after the start began during the run: all of its CPU time counts
            self._first.setdefault(key, 0.0 if self._baseline_taken else cpu)
            self._last[key] = (cpu, name, pid in ours)
        self._baseline_taken = True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> OtherLoad:
        self.load_before = load_average()
        self._began, self._busy0 = time.monotonic(), _machine_busy_s()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self._ended, self._busy1 = time.monotonic(), _machine_busy_s()
        self.load_after = load_average()

    def result(self) -> dict[str, Any]:
        """Average cores busy over the run: the machine, ours, the others, and the five busiest other commands."""
        seconds = max(1e-9, self._ended - self._began)
        ours = 0.0
        others: Counter[str] = Counter()
        for key, (cpu, name, mine) in self._last.items():
            used = max(0.0, cpu - self._first.get(key, cpu))
            if mine:
                ours += used
            else:
                others[name] += used
        machine = (self._busy1 - self._busy0) / seconds
        return {
            "seconds": round(seconds, 1),
            "load_before": self.load_before,
            "load_after": self.load_after,
            "machine_cores": round(machine, 2),
            "ours_cores": round(ours / seconds, 2),
            "others_cores": round(max(0.0, machine - ours / seconds), 2),
            "top_others": [(name, round(used / seconds, 2)) for name, used in others.most_common(5)],
        }
