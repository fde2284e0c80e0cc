"""promtool validates the Prometheus config and alert rules and runs their unit tests.

promtool is a system tool (Debian package ``prometheus``, installed by
``.ci/install-system-packages``). Without it these tests fail rather than skip: CI
installs it, so a missing promtool is a broken set-up, not an optional feature.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.system_tools import prometheus_tool

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    return prometheus_tool("promtool")


def run_promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [promtool, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def test_prometheus_config_is_valid(promtool: str) -> None:
    result = run_promtool(promtool, "check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert "SUCCESS" in result.stdout + result.stderr


def test_alert_rules_are_valid(promtool: str) -> None:
    result = run_promtool(promtool, "check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    assert "SUCCESS" in result.stdout + result.stderr


def test_alert_rule_unit_tests_pass(promtool: str) -> None:
    result = run_promtool(promtool, "test", "rules", str(PROMETHEUS_DIR / "alerts_test.yml"))
    assert "SUCCESS" in result.stdout + result.stderr
