"""The audit's verdicts on pip-audit's JSON report: explained findings pass, others fail, nothing checked = blocked."""

from __future__ import annotations

import pytest

from infra.audit import exceptions_from, judge

REPORT = {
    "dependencies": [
        {
            "name": "jinja2",
            "version": "2.4.1",
            "vulns": [
                {"id": "PYSEC-2014-8", "aliases": ["CVE-2014-1402"], "fix_versions": ["2.7.2"]},
                {"id": "GHSA-462w-v97r-4m45", "aliases": [], "fix_versions": ["2.10.1"]},
            ],
        },
        {"name": "requests", "version": "2.32.5", "vulns": []},
        {"name": "local-thing", "version": "0.1", "skip_reason": "Dependency not found on PyPI"},
    ]
}


def test_an_explained_finding_passes_and_any_other_fails() -> None:
    explained = exceptions_from("# header\nCVE-2014-1402  # only used by the docs build, never at run time\n")
    result = judge(REPORT, "osv", explained)
    assert result.audited == 2 and not result.blocked
    assert result.explained == ["jinja2 2.4.1: PYSEC-2014-8 (fixed in 2.7.2)"]
    assert result.unexplained == ["jinja2 2.4.1: GHSA-462w-v97r-4m45 (fixed in 2.10.1)"]
    assert result.skipped == {"local-thing 0.1": "Dependency not found on PyPI"}


def test_a_report_that_checked_nothing_is_blocked_not_clean() -> None:
    report = {"dependencies": [{"name": "a", "version": "1", "skip_reason": "Dependency not found on PyPI"}]}
    result = judge(report, "pypi", {})
    assert result.blocked and result.unexplained == []


def test_an_exception_without_an_explanation_is_refused() -> None:
    with pytest.raises(ValueError, match="no explanation"):
        exceptions_from("GHSA-xxxx-yyyy-zzzz\n")
