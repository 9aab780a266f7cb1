"""The shipped Prometheus alert rules (deploy/prometheus/fleetflow-alerts.yml): they are a
Prometheus rule file, every metric they name is served by a real edge or hub, every label
value they match on is one the code emits, and every alert has a runbook section in
docs/operations.md. With ``promtool`` installed (Debian: ``apt-get install prometheus``)
the rules and the config are also checked by it and its unit tests are run; without it
that test is skipped, and fails in CI (``.ci/run`` installs it)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import free_port, require_tool
from hub_stack import Stack, run_stack, wait_for

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "prometheus"
RULES = DEPLOY / "fleetflow-alerts.yml"
OPERATIONS = ROOT / "docs" / "operations.md"

PROMETHEUS_OWN = frozenset({"up"})
"""Series Prometheus makes itself for every target (not on any /metrics page)."""

_PROMQL_WORDS = frozenset({"and", "or", "unless", "bool", "offset", "by", "without", "on",
                           "ignoring", "group_left", "group_right"})
"""PromQL keywords, which look like metric names to a tokenizer."""

_SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",),
             "histogram": ("_bucket", "_sum", "_count", "_created"),
             "summary": ("", "_sum", "_count", "_created"), "untyped": ("",)}
"""The sample names each metric type is exposed as (prometheus_client's text format)."""


def _rules() -> list[dict[str, Any]]:
    """Every rule of the shipped file, in order."""
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, keywords, labels).

    >>> sorted(metric_names('sum by (job) (rate(a_total{x="y"}[5m])) / on (job) b > 0.1'))
    ['a_total', 'b']
    """
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings: label values, templates
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)  # matchers and ranges
    # Label lists of grouping and matching clauses name labels, not metrics.
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ",
                  expr)
    tokens = re.findall(r"(?<![\w.])([A-Za-z_:][\w:]*)\b(?!\s*\()", expr)
    return {t for t in tokens if t not in _PROMQL_WORDS}


def served_names(exposition: str) -> set[str]:
    """Every sample name a Prometheus text page can carry, from its ``# TYPE`` lines (so a
    labelled metric with no sample yet counts) and its sample lines."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            base = name.removesuffix("_total") if kind == "counter" else name
            names.update(base + suffix for suffix in _SUFFIXES.get(kind, ("",)))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_the_rules_are_a_prometheus_rule_file() -> None:
    """Groups of rules, each an alert with expr, for, severity, summary and a runbook link."""
    doc = yaml.safe_load(RULES.read_text())
    assert set(doc) == {"groups"} and doc["groups"]
    names: list[str] = []
    for group in doc["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"], group.get("name")
        for rule in group["rules"]:
            assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"Fleetflow[A-Z]\w+", rule["alert"])
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["for"]
            assert rule["labels"]["severity"] in {"critical", "warning"}
            assert rule["annotations"]["summary"]
            assert rule["annotations"]["runbook_url"] == \
                f"docs/operations.md#{rule['alert'].lower()}"
            names.append(rule["alert"])
    assert len(names) == len(set(names)), "alert names repeat"


def test_every_alert_has_a_runbook_section() -> None:
    """Each alert's runbook anchor is a heading of docs/operations.md that says what to do."""
    text = OPERATIONS.read_text()
    sections = dict(re.findall(r"^#{2,4} (.+)\n((?:(?!^#{1,4} ).*\n?)*)", text, re.M))
    anchors = {_slug(h): body for h, body in sections.items()}
    for rule in _rules():
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor in anchors, f"docs/operations.md has no section #{anchor}"
        assert len(anchors[anchor].split()) >= 20, f"#{anchor}: the runbook says too little"


def test_label_values_in_the_rules_are_ones_the_code_emits() -> None:
    """The event kinds and reject reasons the rules match on are emitted by the edge."""
    source = "\n".join(p.read_text() for p in (ROOT / "edge_runtime").rglob("*.py"))
    emitted = set(re.findall(r'emit\("([a-z_]+)"', source))
    for rule in _rules():
        for metric, label in (("fleetflow_edge_events_total", "kind"),
                              ("fleetflow_edge_rejects_total", "reason")):
            for matcher in re.findall(metric + r"\{([^}]*)\}", rule["expr"]):
                for value in re.findall(label + r'\s*!?=~?\s*"([^"]*)"', matcher):
                    for word in value.split("|"):
                        if label == "kind":
                            assert word in emitted, f"{rule['alert']}: no event kind {word}"
                        else:
                            assert f'"{word}"' in source, f"{rule['alert']}: no reason {word}"


def test_promtool_accepts_the_rules_and_their_unit_tests() -> None:
    """promtool checks the rules and the example config and passes the rules' unit tests."""
    promtool = require_tool("promtool", "apt-get install prometheus (.ci/run installs it)")
    for args in (["check", "rules", "fleetflow-alerts.yml"],
                 ["check", "config", "prometheus.yml"],
                 ["test", "rules", "fleetflow-alerts.test.yml"]):
        done = subprocess.run([promtool, *args], cwd=DEPLOY, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory,
          mosquitto_bin: str) -> Iterator[tuple[Stack, int]]:
    """Mosquitto, the edge of ``fa`` serving /metrics on a free port, and the hub; yields
    the stack and the edge's metrics port."""
    metrics = free_port()
    yield from ((s, metrics) for s in run_stack(
        tmp_path_factory.mktemp("alerts"), mosquitto_bin, facilities=("fa",),
        edge_flags={"fa": ["--metrics-port", str(metrics)]}))


@pytest.mark.slow
def test_every_metric_in_the_rules_is_served_by_a_real_edge_or_hub(
        stack: tuple[Stack, int]) -> None:
    """Scraping a running edge and hub yields every metric name any rule's expr uses."""
    s, port = stack
    edge_url = f"http://127.0.0.1:{port}/metrics"
    edge = wait_for(lambda: (r := httpx.get(edge_url, timeout=5)).status_code == 200 and r.text,
                    what="the edge's /metrics")
    hub = httpx.get(f"{s.url}/metrics", timeout=5)
    assert hub.status_code == 200
    served = served_names(edge) | served_names(hub.text) | PROMETHEUS_OWN
    used = {name: rule["alert"] for rule in _rules() for name in metric_names(rule["expr"])}
    assert used, "no metric found in the rules"
    missing = {name: alert for name, alert in used.items() if name not in served}
    assert not missing, f"metrics no component serves: {missing}"
