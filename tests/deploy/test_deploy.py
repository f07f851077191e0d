"""The files in deploy/ checked by the tools that run them: systemd-analyze, promtool, and a real `klaswacht run`.

A missing tool skips its test with the Debian package that provides it (`.ci/run` installs them).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from klaswacht.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "deploy" / "systemd"
PROMETHEUS = ROOT / "deploy" / "prometheus"
UNITS = ("klaswacht.service", "klaswacht-purge.service", "klaswacht-purge.timer", "klaswacht-sync.service",
         "klaswacht-sync.timer")
INSTALLED = "/opt/klaswacht/.venv/bin/klaswacht"  # where deploy/README.md installs it
KLASWACHT = Path(sys.executable).parent / "klaswacht"


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not found: install the Debian package '{package}' (apt-get install {package})")
    return path


def exec_start(unit: str) -> list[str]:
    lines = [line for line in (SYSTEMD / unit).read_text().splitlines() if line.startswith("ExecStart=")]
    assert len(lines) == 1, unit
    return shlex.split(lines[0].removeprefix("ExecStart="))


def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    """No unknown key, no bad value, no missing unit: verify prints nothing (and exits 0 even on unknown keys)."""
    analyze = tool("systemd-analyze", "systemd")
    for unit in UNITS:
        text = (SYSTEMD / unit).read_text()
        # verify insists that ExecStart's binary exists: point a copy at this checkout's.
        (tmp_path / unit).write_text(text.replace(INSTALLED, str(KLASWACHT)))
    result = subprocess.run([analyze, "verify", *(str(tmp_path / unit) for unit in UNITS)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


@pytest.mark.parametrize("unit", ["klaswacht.service", "klaswacht-purge.service"])
def test_units_run_the_installed_command_with_the_deployment_paths(unit: str) -> None:
    """The ExecStart lines are commands klaswacht's own parser accepts, on the data dir and policy of the README."""
    argv = exec_start(unit)
    assert argv[0] == INSTALLED
    args = build_parser().parse_args(argv[1:])
    assert str(args.data_dir) == "/var/lib/klaswacht"
    assert str(args.policy) == "/etc/klaswacht/policy.toml"


def test_the_sync_unit_runs_klaswacht_sync_on_the_deployment_paths() -> None:
    """klaswacht-sync.service's ExecStart (its URL from sync.env) is a command klaswacht's own parser accepts."""
    argv = exec_start("klaswacht-sync.service")
    assert argv[0] == INSTALLED and argv[2] == "${BUNDLE_URL}"
    argv[2] = "https://board.example/klaswacht/bundle.tar.gz"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "sync" and args.into == "/var/lib/klaswacht/bundle"
    assert args.key == "/etc/klaswacht/board.pub"
    text = (SYSTEMD / "klaswacht-sync.service").read_text()
    assert "EnvironmentFile=/etc/klaswacht/sync.env" in text and "ProtectSystem=strict" in text


def test_the_service_is_hardened() -> None:
    text = (SYSTEMD / "klaswacht.service").read_text()
    settings = dict(line.split("=", 1) for line in text.splitlines() if re.match(r"[A-Za-z]+=", line))
    assert settings["User"] == "klaswacht" and settings["StateDirectory"] == "klaswacht"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
                       "SystemCallFilter": "@system-service", "Restart": "on-failure",
                       "StandardOutput": "journal", "StandardError": "journal"}.items():
        assert settings[key] == value, key


def test_promtool_accepts_the_scrape_config_and_the_rules() -> None:
    promtool = tool("promtool", "prometheus")
    for args in (["check", "config", str(PROMETHEUS / "prometheus.yml")],
                 ["check", "rules", str(PROMETHEUS / "klaswacht-rules.yml")]):
        result = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    """deploy/prometheus/klaswacht-rules.test.yml: the alerts fire (and stay quiet) when they should."""
    promtool = tool("promtool", "prometheus")
    result = subprocess.run([promtool, "test", "rules", str(PROMETHEUS / "klaswacht-rules.test.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The /metrics text of a real `klaswacht run`, every wait bounded."""
    tmp = tmp_path_factory.mktemp("deploy")
    out, err = tmp / "stdout", tmp / "stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [str(KLASWACHT), "run", "--data-dir", str(tmp / "data"), "--proxy-port", "0",
             "--dashboard-port", "0", "--metrics-port", "0"], stdout=stdout, stderr=stderr)
    try:
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline and process.poll() is None:
            found = re.search(r"^metrics: (\S+)$", out.read_text(), re.MULTILINE)
            url = found.group(1) if found else None
            if url is None:
                time.sleep(0.1)
        if url is None:
            pytest.fail(f"klaswacht run printed no metrics address: {out.read_text()} {err.read_text()}")
        with urllib.request.urlopen(url, timeout=10) as response:
            yield response.read().decode()
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_every_metric_in_the_alert_rules_is_exposed_by_klaswacht_run(scraped: str) -> None:
    """Names and label values in the rules' expressions exist in a real scrape: a renamed metric breaks this test."""
    exposed: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(scraped):
        for sample in family.samples:
            exposed.setdefault(sample.name, []).append(sample.labels)
    rules = (PROMETHEUS / "klaswacht-rules.yml").read_text()
    used = re.findall(r"\b(klaswacht_\w+)(?:\{([^}]*)\})?", rules)
    assert {name for name, _ in used} >= {"klaswacht_store_queue_depth", "klaswacht_decision_seconds_bucket",
                                          "klaswacht_reloads_total", "klaswacht_store_events_total",
                                          "klaswacht_config_info"}
    for name, matchers in used:
        assert name in exposed, f"{name} is in the rules but klaswacht run does not expose it"
        for label, value in re.findall(r'(\w+)="([^"]*)"', matchers):
            assert any(labels.get(label) == value for labels in exposed[name]), f'{name}{{{label}="{value}"}}'
