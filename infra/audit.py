"""Dependency vulnerability audit of the locked environment (``make audit``; ``make test`` runs it first).

Every package pinned in uv.lock (all groups) is checked with pip-audit against a vulnerability service: OSV
(api.osv.dev) first, then PyPI's per-release JSON (pypi.org/pypi/<name>/<version>/json). Known findings that
were looked at and judged are listed, each with its explanation, in ``audit-exceptions.txt`` at the repository
root (``<ID>  # why it does not apply / what is done about it``); every other finding fails the audit.

Outcomes (exit code):
  0  audited, no unexplained finding
  1  unexplained findings (listed with their fix versions)
  3  blocked: no vulnerability service could be reached from this machine; the exact errors are printed.
     ``--offline-ok`` turns this into exit 0 with the same BLOCKED line (what CI uses on a machine without
     access to OSV or PyPI's release JSON); the audit is then not done and says so.

Usage::

    python -m infra.audit                 # what `make audit` runs
    python -m infra.audit --offline-ok    # what `make test` runs
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["AuditResult", "exceptions_from", "judge", "main"]

ROOT = Path(__file__).resolve().parent.parent
EXCEPTIONS_FILE = ROOT / "audit-exceptions.txt"
SERVICES = ("osv", "pypi")


@dataclass
class AuditResult:
    """What one pip-audit run found: findings not explained, explained ones, packages it could not check."""

    service: str
    audited: int = 0
    unexplained: list[str] = field(default_factory=list)
    explained: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        """No package could be checked at all (the service is unreachable or answers nothing)."""
        return self.audited == 0


def exceptions_from(text: str) -> dict[str, str]:
    """``{vulnerability id: explanation}`` from the exceptions file (``ID  # explanation`` per line)."""
    explained: dict[str, str] = {}
    for line in text.splitlines():
        entry, _, why = line.partition("#")
        if entry.strip():
            if not why.strip():
                raise ValueError(f"audit exception {entry.strip()!r} has no explanation after '#'")
            explained[entry.strip()] = why.strip()
    return explained


def judge(report: dict, service: str, explained: dict[str, str]) -> AuditResult:
    """Sort pip-audit's JSON report (``-f json``) into unexplained / explained findings and skipped packages."""
    result = AuditResult(service=service)
    for dependency in report.get("dependencies", []):
        name, version = dependency.get("name"), dependency.get("version")
        if "skip_reason" in dependency:
            result.skipped[f"{name} {version}"] = dependency["skip_reason"]
            continue
        result.audited += 1
        for vuln in dependency.get("vulns", []):
            ids = [vuln["id"], *vuln.get("aliases", [])]
            label = f"{name} {version}: {vuln['id']} (fixed in {', '.join(vuln.get('fix_versions', [])) or 'none'})"
            if any(i in explained for i in ids):
                result.explained.append(label)
            else:
                result.unexplained.append(label)
    return result


def _locked_requirements(folder: Path) -> Path:
    path = folder / "requirements.txt"
    # uv as `make setup` installed it: on PATH, else the module of the Python that installed it
    uv = ["uv"] if shutil.which("uv") else ["python3", "-m", "uv"]
    subprocess.run(
        [*uv, "export", "--frozen", "--all-groups", "--no-hashes", "--no-emit-project", "--output-file", str(path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return path


def _pip_audit(requirements: Path, service: str, explained: dict[str, str]) -> tuple[AuditResult | None, str]:
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "--requirement",
        str(requirements),
        "--no-deps",
        "--disable-pip",
        "--vulnerability-service",
        service,
        "--format",
        "json",
        "--progress-spinner",
        "off",
        "--timeout",
        "20",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        error = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, error
    return judge(report, service, explained), ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.audit", description=__doc__.splitlines()[0])
    parser.add_argument("--offline-ok", action="store_true", help="exit 0 when no vulnerability service answers")
    args = parser.parse_args(argv)
    explained = exceptions_from(EXCEPTIONS_FILE.read_text()) if EXCEPTIONS_FILE.exists() else {}
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="retail-audit-") as folder:
        requirements = _locked_requirements(Path(folder))
        packages = sum(1 for line in requirements.read_text().splitlines() if "==" in line)
        print(f"[audit] {packages} locked packages (uv.lock, all groups); services: {', '.join(SERVICES)}")
        for service in SERVICES:
            result, error = _pip_audit(requirements, service, explained)
            if result is None:
                errors.append(f"{service}: {error}")
                continue
            if result.blocked:
                reason = next(iter(result.skipped.values()), "no package was audited")
                errors.append(f"{service}: every package skipped, e.g. {reason}")
                continue
            print(f"[audit] {service}: {result.audited} packages checked, {len(result.skipped)} skipped")
            for label in result.explained:
                print(f"[audit]   explained: {label} ({EXCEPTIONS_FILE.name})")
            for label in result.unexplained:
                print(f"[audit]   FINDING: {label}")
            if result.unexplained:
                print(
                    f"[audit] {len(result.unexplained)} unexplained finding(s): upgrade, or explain in "
                    f"{EXCEPTIONS_FILE.name}"
                )
                return 1
            return 0
    print("[audit] BLOCKED: no vulnerability service reachable from this machine; nothing was audited:")
    for error in errors:
        print(f"[audit]   {error}")
    return 0 if args.offline_ok else 3


if __name__ == "__main__":
    raise SystemExit(main())
