# SPDX-License-Identifier: Apache-2.0
"""[log] format = "json": every line ringport writes to stderr is one JSON
object with time, level and msg; access lines carry their fields and the
request id, the same id the audit log gives the request."""
import json
import os
import re
import tempfile

from ringtest.client import Client
from ringtest.harness import Ringport, ringport_with_config, wait_until


def test_json_lines_with_request_ids():
    audit = tempfile.mktemp(suffix=".jsonl")
    srv, cfg = ringport_with_config(f'[log]\nformat = "json"\n[audit]\npath = "{audit}"\n')
    try:
        c = Client(srv.host)
        c.push_image("logs/app", "v1")
        assert c.request("GET", "/v2/logs/app/manifests/nope%ff%22").status in (400, 404)
        assert wait_until(lambda: any('"PUT"' in line for line in srv.err), 5)
        assert wait_until(lambda: os.path.exists(audit) and os.path.getsize(audit) > 0, 5)
    finally:
        srv.cleanup()
        os.unlink(cfg)
    lines = [json.loads(line) for line in srv.err if line.strip()]
    assert lines
    for x in lines:
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", x["time"]), x
        assert x["level"] in ("debug", "info", "warn", "error"), x
        assert isinstance(x["msg"], str), x
    access = [x for x in lines if x["msg"] == "access"]
    put = [x for x in access if x["method"] == "PUT" and x["target"] == "/v2/logs/app/manifests/v1"]
    assert len(put) == 1, access
    p = put[0]
    assert p["status"] == 201 and p["bytes_in"] > 0 and p["duration_us"] >= 0
    assert re.match(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
                    p["request_id"])
    assert len({x["request_id"] for x in access}) == len(access)  # one id per request
    with open(audit) as f:
        records = [json.loads(line) for line in f]
    pushed = [r for r in records if r.get("reference") == "v1"]
    assert [r["request_id"] for r in pushed] == [p["request_id"]]
    os.unlink(audit)


def test_bad_log_format_is_refused():
    fd, cfg = tempfile.mkstemp(suffix=".toml")
    with os.fdopen(fd, "w") as f:
        f.write('[log]\nformat = "xml"\n')
    srv = Ringport(config=cfg)
    try:
        srv.start()
        raise AssertionError("ringport started with log.format xml")
    except RuntimeError as e:
        assert "log.format 'xml'" in str(e)
    finally:
        srv.cleanup()
        os.unlink(cfg)
