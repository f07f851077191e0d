"""The Grafana dashboard of IT: importable as is, and every metric it draws is served by a real `klaswacht run`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proxy"))
from proxy_helpers import Running, fetch, start, until

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards" / "grafana" / "klaswacht.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's own interval variables, replaced by a fixed range so that the PromQL can be checked.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def drawing(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in drawing(dashboard) for t in p["targets"]]


def test_dashboard_is_a_standard_model(dashboard: dict[str, Any]) -> None:
    assert dashboard["title"] == "klaswacht"
    assert dashboard["uid"] == "klaswacht"
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        assert panel["type"] in {"row", "stat", "timeseries"}, panel["title"]
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}, panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
    for panel in drawing(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"] in {"reqps", "s", "short"}, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_labels_stay_bounded(dashboard: dict[str, Any]) -> None:
    """No host or pupil is ever a label; the dashboard groups only by the bounded labels of the proxy."""
    bounded = {"action", "rule", "category", "le", "state", "result", "choice", "reason", "worker"}  # worker: 0..N-1
    for expr in expressions(dashboard):
        for group in re.findall(r"by \(([^)]*)\)", expr):
            assert {g.strip() for g in group.split(",")} <= bounded, expr


@pytest.fixture(scope="module")
def served_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    """Sample names on /metrics of a real `klaswacht run`, after one blocked and one allowed request."""
    running: Running = start(tmp_path_factory.mktemp("grafana"), "--period", "lesson")
    try:
        status, _ = fetch(running.proxy, "http://www.google.com/search?q=kankerjuf")
        assert status == 403
        fetch(running.proxy, "http://127.0.0.1:9/allowed")  # allowed by the filter; the upstream refuses

        def scrape() -> str:
            with urllib.request.urlopen(running.lines["metrics"], timeout=10) as response:
                return response.read().decode()

        def both_counted() -> bool:
            text = scrape()
            return 'action="block"' in text and 'action="allow"' in text

        assert until(both_counted, 10) is not None, scrape()
        names = {re.split(r"[{ ]", line, maxsplit=1)[0] for line in scrape().splitlines()
                 if line and not line.startswith("#")}
        yield names
    finally:
        running.stop()


def test_every_metric_is_served(dashboard: dict[str, Any], served_metrics: set[str]) -> None:
    used = {name for expr in expressions(dashboard) for name in re.findall(r"\bklaswacht_[a-z0-9_]+", expr)}
    assert used, "the dashboard draws no klaswacht metric"
    assert used <= served_metrics, f"not served by klaswacht run: {sorted(used - served_metrics)}"


def test_every_expression_parses(dashboard: dict[str, Any], tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`): PromQL of the dashboard not checked")
    rules = []
    for i, expr in enumerate(expressions(dashboard)):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"klaswacht:dashboard:{i}", "expr": expr})
    # JSON is YAML: one recording rule per expression.
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
