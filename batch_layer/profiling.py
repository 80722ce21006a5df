"""Where a batch run spends its time: wall time per step and part, and every Spark job each one ran.

Each step runs under a Spark job group (``retail-batch/<step>``) and each part of a step under a job description
(``<step>: <part>``), so every job Spark runs, Delta's own (log replay, stats, commits) included, is attributed
to the step and part that caused it. After a step, the jobs of its group are read from Spark's status store (kept
with the UI off too) with their submission and completion times.

Example::

    profile = SparkProfile(spark)
    with profile.step("recompute"):
        with profile.part("dedup"):
            frame.count()
    profile.report()["steps"]["recompute"]   # {"wall_s": ..., "jobs": 3, "job_s": ..., "parts": {...}}
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyspark.sql import SparkSession

__all__ = ["SparkProfile"]

_GROUP_PREFIX = "retail-batch/"


class SparkProfile:
    """Wall time per step and part, plus the Spark jobs (count, summed duration, slowest) of each."""

    def __init__(self, spark: SparkSession | None) -> None:
        self.spark = spark
        self._steps: dict[str, dict[str, Any]] = {}
        self._parts: dict[str, dict[str, float]] = {}
        self._step: str | None = None

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Run a step under its own job group and record its wall time and jobs."""
        self._step = name
        self._parts.setdefault(name, {})
        context = self.spark.sparkContext if self.spark is not None else None
        if context is not None:
            context.setJobGroup(_GROUP_PREFIX + name, name)
        began = time.monotonic()
        try:
            yield
        finally:
            wall = time.monotonic() - began
            jobs = self._jobs(_GROUP_PREFIX + name)
            if context is not None:
                context.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
                context.setLocalProperty("spark.job.description", None)  # type: ignore[arg-type]
            self._steps[name] = self._summary(name, wall, jobs)
            self._step = None

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        """A named part of the current step: its jobs carry the description ``<step>: <name>``."""
        step = self._step or "-"
        context = self.spark.sparkContext if self.spark is not None else None
        if context is not None:
            context.setJobDescription(f"{step}: {name}")
        began = time.monotonic()
        try:
            yield
        finally:
            parts = self._parts.setdefault(step, {})
            parts[name] = parts.get(name, 0.0) + time.monotonic() - began
            if context is not None:
                context.setJobDescription(step)

    def _jobs(self, group: str) -> list[dict[str, Any]]:
        if self.spark is None:
            return []
        try:
            listed = self.spark.sparkContext._jsc.sc().statusStore().jobsList(None)
        except Exception:  # noqa: BLE001 - profiling must never fail a run (e.g. a Spark Connect session)
            return []
        jobs = []
        for index in range(listed.size()):
            job = listed.apply(index)
            if not (job.jobGroup().isDefined() and job.jobGroup().get() == group):
                continue
            submitted, completed = job.submissionTime(), job.completionTime()
            seconds = (
                (completed.get().getTime() - submitted.get().getTime()) / 1000
                if submitted.isDefined() and completed.isDefined()
                else None
            )
            jobs.append(
                {
                    "id": int(job.jobId()),
                    "description": job.description().get() if job.description().isDefined() else "",
                    "call": str(job.name()).split(" at ")[0],
                    "tasks": int(job.numTasks()),
                    "seconds": seconds,
                }
            )
        return sorted(jobs, key=lambda j: j["id"])

    def _summary(self, step: str, wall: float, jobs: list[dict[str, Any]]) -> dict[str, Any]:
        by_part: dict[str, dict[str, float]] = {}
        known = sorted(self._parts.get(step, {}), key=len, reverse=True)
        for job in jobs:
            # Delta prefixes the description it inherits ("Delta: <step>: <part>: <operation>")
            text = job["description"].removeprefix("Delta: ").removeprefix(f"{step}: ")
            part = next((name for name in known if text.startswith(name)), "(step)")
            entry = by_part.setdefault(part, {"jobs": 0, "job_s": 0.0})
            entry["jobs"] += 1
            entry["job_s"] += job["seconds"] or 0.0
        parts = {
            name: {"wall_s": round(seconds, 2), **_rounded(by_part.pop(name, {"jobs": 0, "job_s": 0.0}))}
            for name, seconds in self._parts.get(step, {}).items()
        }
        parts.update({name: _rounded(entry) for name, entry in by_part.items()})
        job_s = sum(job["seconds"] or 0.0 for job in jobs)
        slowest = sorted(jobs, key=lambda j: -(j["seconds"] or 0.0))[:5]
        return {
            "wall_s": round(wall, 2),
            "jobs": len(jobs),
            "job_s": round(job_s, 2),
            "outside_jobs_s": round(max(wall - job_s, 0.0), 2),
            "parts": parts,
            "slowest_jobs": [{**job, "seconds": round(job["seconds"] or 0.0, 2)} for job in slowest],
            "all_jobs": [
                [job["id"], round(job["seconds"] or 0.0, 2), job["tasks"], job["call"], job["description"][:160]]
                for job in jobs
            ],
        }

    def report(self) -> dict[str, Any]:
        """Every step profiled so far: {"steps": {name: summary}}."""
        return {"steps": dict(self._steps)}

    def step_report(self, name: str) -> dict[str, Any] | None:
        return self._steps.get(name)


def _rounded(entry: dict[str, float]) -> dict[str, Any]:
    return {"jobs": int(entry["jobs"]), "job_s": round(entry["job_s"], 2)}
