"""test_contrib.py — the shipped Prometheus rules and Grafana dashboard (contrib/).

The rules are unit-tested with Debian's `promtool test rules`; the dashboard's queries
are run, as Grafana would run them, against a real Prometheus scraping a collector that
saw real checkpoints (one with a NaN, so alerts exist), and each must return data. Every
metric name the two files use must be one the collector serves.
"""
import json
import re
import subprocess

from ckmon_helpers import REPO
from sink_servers import Prometheus, VictoriaMetrics, wait_for
from test_scrape import Collect

RULES = REPO / "contrib" / "prometheus"
DASHBOARD = REPO / "contrib" / "grafana" / "ckmon-dashboard.json"


def promtool(*args):
    p = subprocess.run(["promtool", *args], cwd=RULES, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def test_rules_pass_promtool():
    assert "SUCCESS" in promtool("check", "rules", "ckmon-rules.yml")
    assert "SUCCESS" in promtool("test", "rules", "ckmon-rules.test.yml")


def dashboard_queries():
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def grafana_variables(expr):
    """The query as Grafana sends it with one job and run chosen."""
    for name, value in (("$job", "train"), ("$run", "r1"), ("$loss_key", "loss"),
                        ("$lr_key", "lr"), ("$__range", "1h")):
        expr = expr.replace(name, value)
    return expr


def test_dashboard_queries_return_data(work, servers):
    vm = servers(VictoriaMetrics)
    c = Collect(work, "-s", f"victoriametrics={vm.url}")
    try:
        c.write(0, 3)  # epoch 2's loss is NaN: an alert, and non-finite counts
        families = set(re.findall(r"^# TYPE (\S+) ", c.metrics(), re.M))
        prom = servers(Prometheus, targets=[f"127.0.0.1:{c.port}"])
        names = set()
        for expr in dashboard_queries():
            names |= set(re.findall(r"\bckmon_[a-z_]+", expr))
            query = grafana_variables(expr)
            wait_for(f"data for {query}", lambda: prom.query(query))
        names |= set(re.findall(r"\bckmon_[a-z_]+", (RULES / "ckmon-rules.yml").read_text()))
        assert names <= families, names - families
    finally:
        c.stop()
