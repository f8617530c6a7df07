# SPDX-License-Identifier: Apache-2.0
"""deploy/: the Prometheus alert rules pass `promtool check rules` and their
unit tests (`promtool test rules`); the Grafana dashboard's queries parse
as PromQL; and every ringport metric the rules and the dashboard name is
one a live ringport exposes (with a mirror, webhooks, the audit log and
the scrub on), so neither can silently point at nothing."""
import json
import os
import re
import subprocess
import tempfile

from ringtest.client import Client
from ringtest.fakeupstream import FakeUpstream
from ringtest.harness import ringport_with_config
from ringtest.hooks import Receiver, endpoint_config

DEPLOY = os.path.join(os.path.dirname(__file__), "..", "..", "deploy")
RULES = os.path.join(DEPLOY, "prometheus", "ringport-alerts.yml")
RULE_TESTS = os.path.join(DEPLOY, "prometheus", "ringport-alerts.test.yml")
DASHBOARD = os.path.join(DEPLOY, "grafana", "ringport.json")
NAME = re.compile(r"\bringport_[a-z0-9_]+")


def promtool(*args):
    r = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def dashboard_exprs():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 15
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    return exprs


def test_alert_rules_check_and_their_tests_pass():
    assert "SUCCESS" in promtool("check", "rules", RULES)
    promtool("test", "rules", RULE_TESTS)


def test_dashboard_queries_are_valid_promql():
    # promtool parses the queries when they are recording rules.
    exprs = [e.replace("$instance", ".*") for e in dashboard_exprs()]
    fd, path = tempfile.mkstemp(suffix=".yml")
    with os.fdopen(fd, "w") as f:
        f.write("groups:\n  - name: dashboard\n    rules:\n")
        for i, e in enumerate(exprs):
            f.write(f"      - record: dashboard:q{i}\n        expr: {json.dumps(e)}\n")
    try:
        assert f"SUCCESS: {len(exprs)} rules found" in promtool("check", "rules", path)
    finally:
        os.unlink(path)


def test_every_metric_named_is_exposed():
    with open(RULES) as f:
        named = set(NAME.findall(f.read()))
    for e in dashboard_exprs():
        named |= set(NAME.findall(e))
    assert len(named) >= 20
    up = FakeUpstream(bearer=False)
    rx = Receiver().start()
    audit = tempfile.mktemp(suffix=".jsonl")
    srv, cfg = ringport_with_config(
        f'[[mirror]]\nprefix = "up.test"\nurl = "{up.url}"\n' + endpoint_config("ci", rx.url) +
        f'[audit]\npath = "{audit}"\n[scrub]\nbytes_per_s = 1000000\n')
    try:
        c = Client(srv.host)
        c.push_image("d/app", "v1")
        assert c.request("GET", "/v2/d/app/manifests/v1").status == 200
        text = c.request("GET", "/metrics").body.decode()
        exposed = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
                   if line and not line.startswith("#")}
        missing = sorted(n for n in named if n not in exposed)
        assert not missing, missing
    finally:
        srv.cleanup()
        up.close()
        rx.stop()
        os.unlink(cfg)
        if os.path.exists(audit):
            os.unlink(audit)
