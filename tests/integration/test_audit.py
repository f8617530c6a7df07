# SPDX-License-Identifier: Apache-2.0
"""The audit log: one JSON line for every write (push, tag, mount), delete,
retention or GC deletion, refused login or access, and admin action, with
who, what, when, the outcome and the access log's request id; reopened on
SIGHUP after logrotate moved it."""
import json
import os
import re
import signal
import tempfile
import time

from ringtest.authtest import htpasswd_file, start_with_config
from ringtest.client import Client
from ringtest.harness import wait_until
from ringtest.images import manifest_for, put, run_to_end
from ringtest.oci import OCI_MANIFEST, random_bytes

TIMEOUT_S = 30.0
USERS = {"alice": "a-pass", "bob": "b-pass"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def records(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def access_id(srv, method, path_part, status):
    for line in srv.err:
        if f'"{method} ' in line and path_part in line and f'" {status} ' in line:
            m = re.search(r"\bid=([0-9a-f-]{36})\b", line)
            if m:
                return m.group(1)
    return None


def test_audit_log_records_writes_deletes_refusals_admin_and_lifecycle():
    d = tempfile.mkdtemp(prefix="ringport-audit-")
    log = os.path.join(d, "audit.jsonl")
    srv = start_with_config(f"""
[auth]
scheme = "htpasswd"
htpasswd_path = "{htpasswd_file(d, USERS)}"
failures_per_minute = 1000

[audit]
path = "{log}"

[[retention.policy]]
repositories = ["team/ret"]
keep_last = 1

[[access]]
who = ["bob"]
repositories = ["team/*"]
actions = ["pull"]

[[access]]
who = ["alice"]
repositories = ["**"]
actions = ["pull", "push", "delete", "catalog", "admin"]
""")
    try:
        alice = Client(srv.host, auth=("alice", "a-pass"))
        layer = random_bytes(4000, 7)
        body = manifest_for(alice, "team/app", [layer])
        md = put(alice, "team/app", "v1", body)
        ld = json.loads(body)["layers"][0]["digest"]
        r = alice.request("POST", f"/v2/team/other/blobs/uploads/?mount={ld}&from=team/app")
        assert r.status == 201, r
        # Refused: bob may only pull; mallory's password is wrong.
        bob = Client(srv.host, auth=("bob", "b-pass"))
        assert bob.request("DELETE", "/v2/team/app/manifests/v1").status == 403
        wrong = Client(srv.host, auth=("alice", "wrong"))
        assert wrong.request("GET", "/v2/team/app/tags/list").status == 401
        # A failed write.
        assert alice.request("PUT", "/v2/team/app/manifests/bad", body=b"{",
                             headers={"Content-Type": OCI_MANIFEST}).status == 400
        # Deletes, then a GC that frees the image's blobs.
        assert alice.request("DELETE", "/v2/team/app/manifests/v1").status == 202
        assert alice.request("DELETE", f"/v2/team/app/manifests/{md}").status == 202
        assert alice.request("DELETE", f"/v2/team/other/blobs/{ld}").status == 202
        gc = run_to_end(alice, "gc", "grace_s=0")
        assert gc["blobs_deleted"] == 3, gc  # the manifest, its config and its layer
        # Retention deletes the older of two tags.
        old = put(alice, "team/ret", "old", manifest_for(alice, "team/ret", [random_bytes(9, 8)]))
        put(alice, "team/ret", "new", manifest_for(alice, "team/ret", [random_bytes(9, 9)]))
        time.sleep(1.1)  # retention keeps a manifest used in the second it plans in
        ret_rep = run_to_end(alice, "retention", "dry_run=false")
        assert ret_rep["tags_deleted"] == 1 and ret_rep["manifests_deleted"] == 1, ret_rep

        def by(action):
            return [x for x in records(log) if x["action"] == action]
        assert wait_until(lambda: len(by("retention-delete")) >= 2 and len(by("gc-delete")) >= 2,
                          TIMEOUT_S), " ".join(x["action"] for x in records(log))
        recs = records(log)
        for x in recs:
            assert RFC3339.match(x["time"]), x
            assert x["outcome"] in ("ok", "failed", "denied", "error"), x
        pushes = [x for x in by("push") if x["outcome"] == "ok"]
        m = [x for x in pushes if x.get("reference") == "v1"][0]
        assert m["user"] == "alice" and m["repository"] == "team/app" and m["digest"] == md
        assert m["size"] == len(body) and m["media_type"] == OCI_MANIFEST and m["status"] == 201
        assert m["addr"].startswith("127.0.0.1:") and m["method"] == "PUT"
        assert m["request_id"] == access_id(srv, "PUT", "/v2/team/app/manifests/v1", 201)
        assert any(x.get("digest") == ld and x.get("size") == len(layer) for x in pushes)
        mount = by("mount")[0]
        assert (mount["repository"], mount["digest"], mount["from"]) == ("team/other", ld,
                                                                          "team/app")
        denied = by("authorize")
        assert [(x["user"], x["outcome"], x["status"], x["method"]) for x in denied] == [
            ("bob", "denied", 403, "DELETE")], denied
        failed = by("authenticate")
        assert [(x["outcome"], x["status"]) for x in failed] == [("failed", 401)], failed
        bad = [x for x in by("push") if x["outcome"] == "error"]
        assert [(x["reference"], x["status"], x["user"]) for x in bad] == [("bad", 400, "alice")]
        dels = by("delete")
        assert [(x["repository"], x.get("reference"), x.get("digest"), x["detail"])
                for x in dels] == [("team/app", "v1", None, "tag"),
                                   ("team/app", None, md, "manifest"),
                                   ("team/other", None, ld, "blob")], dels
        admin = by("admin")
        assert [x["detail"].split("?")[0] for x in admin] == ["/ringport/v1/gc",
                                                              "/ringport/v1/retention"], admin
        assert all(x["user"] == "alice" and x["outcome"] == "ok" for x in admin)
        gcd = by("gc-delete")
        assert {x["digest"] for x in gcd} >= {ld, md}, gcd
        assert all(x["user"] == "ringport:gc" and x["size"] > 0 for x in gcd)
        ret = by("retention-delete")
        assert {(x.get("reference"), x.get("digest")) for x in ret} == {("old", None),
                                                                        (None, old)}, ret
        assert all(x["user"] == "ringport:retention" for x in ret)

        # logrotate: the file is moved away, SIGHUP, and the next record starts a new file.
        n = len(records(log))
        os.rename(log, log + ".1")
        srv.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: any("audit log" in line and "opened again" in line
                                      for line in srv.err), TIMEOUT_S)
        assert wait_until(lambda: os.path.exists(log), TIMEOUT_S)
        put(alice, "team/app", "v2", manifest_for(alice, "team/app", [random_bytes(10, 10)]))
        assert wait_until(lambda: any(x.get("reference") == "v2" for x in records(log)),
                          TIMEOUT_S)
        assert len(records(log + ".1")) == n
        assert not any(x.get("reference") == "v2" for x in records(log + ".1"))
    finally:
        srv.cleanup()
