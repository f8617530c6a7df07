# SPDX-License-Identifier: Apache-2.0
"""The admin API (/ringport/v1/) against docs/openapi.json: every answer of
the real server, success and error, has a status the document lists and a
body its schema accepts (additional properties refused, so an undocumented
field fails); and the access-rule matrix: anonymous callers get 401, a user
without the `admin` action 403, an admin the answer."""
import os
import tempfile

import jsonschema

from ringtest.authtest import htpasswd_file, start_with_config
from ringtest.client import Client
from ringtest.fakeupstream import FakeUpstream
from ringtest.harness import wait_until
from ringtest.openapi import DOC, RESOLVER, check


def test_the_document_is_well_formed():
    assert DOC["openapi"].startswith("3.1")
    for path, ops in DOC["paths"].items():
        assert path.startswith("/ringport/v1/"), path
        for method, op in ops.items():
            assert method in ("get", "post", "delete"), (path, method)
            assert op["operationId"] and op["responses"], (path, method)
            for code, r in op["responses"].items():
                if "content" not in r:
                    assert code == "204", (path, method, code)  # only "no content" has none
                    continue
                ref = r["content"]["application/json"]["schema"]["$ref"]
                RESOLVER.resolve(ref)  # every reference resolves
    for schema in DOC["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_real_answers_match_the_schemas_and_the_access_matrix():
    d = tempfile.mkdtemp(prefix="ringport-openapi-")
    up = FakeUpstream(bearer=False)
    srv = start_with_config(f"""
[auth]
scheme = "htpasswd"
htpasswd_path = "{htpasswd_file(d, {"alice": "a-pass", "bob": "b-pass", "carol": "c-pass"})}"
failures_per_minute = 1000

[[access]]
who = ["alice"]
repositories = ["**"]
actions = ["pull", "push", "delete", "catalog", "admin"]

[[access]]
who = ["bob"]
repositories = ["**"]
actions = ["pull", "push", "delete", "catalog"]

[[access]]
who = ["carol"]
repositories = ["api/**"]
actions = ["pull", "catalog"]

[scrub]
bytes_per_s = 10000000
interval_s = 1

[[retention.policy]]
repositories = ["api/**"]
keep_last = 1

[[mirror]]
prefix = "up.test"
url = "{up.url}"
""")
    try:
        alice = Client(srv.host, auth=("alice", "a-pass"))
        alice.push_image("api/app", "v1")
        alice.push_image("api/app", "v2", layers=(b"other",))
        calls = [("GET", "/ringport/v1/status", "/ringport/v1/status"),
                 ("GET", "/ringport/v1/gc", "/ringport/v1/gc"),
                 ("POST", "/ringport/v1/gc?dry_run=true", "/ringport/v1/gc"),
                 ("POST", "/ringport/v1/gc?grace_s=soon", "/ringport/v1/gc"),
                 ("GET", "/ringport/v1/retention", "/ringport/v1/retention"),
                 ("POST", "/ringport/v1/retention?dry_run=true", "/ringport/v1/retention"),
                 ("GET", "/ringport/v1/scrub", "/ringport/v1/scrub"),
                 ("GET", "/ringport/v1/mirrors", "/ringport/v1/mirrors"),
                 ("DELETE", "/ringport/v1/repositories/api/none",
                  "/ringport/v1/repositories/{name}"),
                 ("GET", "/ringport/v1/insights", "/ringport/v1/insights"),
                 ("GET", "/ringport/v1/insights?top=0", "/ringport/v1/insights"),
                 ("GET", "/ringport/v1/timeseries?days=3", "/ringport/v1/timeseries"),
                 ("GET", "/ringport/v1/timeseries?days=none", "/ringport/v1/timeseries"),
                 ("DELETE", "/ringport/v1/repositories/api/app/-/tags/none",
                  "/ringport/v1/repositories/{name}/-/tags/{tag}"),
                 ("DELETE", "/ringport/v1/repositories/api/app/-/manifests/sha256:none",
                  "/ringport/v1/repositories/{name}/-/manifests/{digest}")]
        v1 = alice.get_manifest("api/app", "v1").header("Docker-Content-Digest")
        # What a user with `pull` and `catalog` may read, and anonymous may not.
        reads = [("GET", "/ringport/v1/repositories", "/ringport/v1/repositories"),
                 ("GET", "/ringport/v1/repositories?sort=pulls&q=app",
                  "/ringport/v1/repositories"),
                 ("GET", "/ringport/v1/repositories?limit=0", "/ringport/v1/repositories"),
                 ("GET", "/ringport/v1/repositories?sort=color", "/ringport/v1/repositories"),
                 ("GET", "/ringport/v1/repositories/api/app", "/ringport/v1/repositories/{name}"),
                 ("GET", "/ringport/v1/repositories/api/none", "/ringport/v1/repositories/{name}"),
                 ("GET", "/ringport/v1/repositories/api/app/-/tags",
                  "/ringport/v1/repositories/{name}/-/tags"),
                 ("GET", "/ringport/v1/repositories/api/app/-/tags/v1",
                  "/ringport/v1/repositories/{name}/-/tags/{tag}"),
                 ("GET", "/ringport/v1/repositories/api/app/-/tags/none",
                  "/ringport/v1/repositories/{name}/-/tags/{tag}"),
                 ("GET", f"/ringport/v1/repositories/api/app/-/manifests/{v1}",
                  "/ringport/v1/repositories/{name}/-/manifests/{digest}"),
                 ("GET", "/ringport/v1/repositories/api/app/-/tags/v1?body=true",
                  "/ringport/v1/repositories/{name}/-/tags/{tag}"),
                 ("GET", f"/ringport/v1/repositories/api/app/-/manifests/{v1}?body=true",
                  "/ringport/v1/repositories/{name}/-/manifests/{digest}")]
        anonymous = Client(srv.host)
        bob = Client(srv.host, auth=("bob", "b-pass"))
        for method, path, template in reads:
            r = anonymous.request(method, path)
            assert r.status == 401, (path, r)
            check(method, template, r)
            r = bob.request(method, path)
            assert r.status != 401 and r.status != 403, (path, r)
            check(method, template, r)
            check(method, template, alice.request(method, path))
        # What other repositories hold shows only to a caller who may pull
        # every repository: carol sees her repository's size, not its sharing.
        carol = Client(srv.host, auth=("carol", "c-pass"))
        mine = check("GET", "/ringport/v1/repositories/{name}",
                     carol.request("GET", "/ringport/v1/repositories/api/app"))
        assert mine["size_bytes"] > 0 and mine["unique_bytes"] is None
        assert mine["shared_bytes"] is None and mine["delete_frees"] is None
        theirs = bob.request("GET", "/ringport/v1/repositories/api/app").json()
        assert theirs["unique_bytes"] is not None and theirs["delete_frees"]["manifests"] >= 1
        tag = check("GET", "/ringport/v1/repositories/{name}/-/tags/{tag}",
                    carol.request("GET", "/ringport/v1/repositories/api/app/-/tags/v1"))
        assert tag["delete_frees"] is None
        r = carol.request("GET", "/ringport/v1/repositories?sort=unique_size")
        assert r.status == 403 and r.error_codes() == ["DENIED"], r
        check("GET", "/ringport/v1/repositories", r)
        listed = check("GET", "/ringport/v1/repositories",
                       carol.request("GET", "/ringport/v1/repositories"))
        assert [x["unique_bytes"] for x in listed["repositories"]] == [None]
        # Deleting needs admin, on the tag list too (which has no DELETE).
        r = bob.request("DELETE", "/ringport/v1/repositories/api/app/-/tags")
        assert r.status == 403, r
        assert alice.request("DELETE", "/ringport/v1/repositories/api/app/-/tags").status == 405
        # The access matrix, before anything changes.
        for method, path, template in calls + [
                ("DELETE", "/ringport/v1/repositories/api/app", "/ringport/v1/repositories/{name}")]:
            assert check(method, template, anonymous.request(method, path)), path
            r = anonymous.request(method, path)
            assert r.status == 401, (path, r)
            r = bob.request(method, path)
            assert r.status == 403, (path, r)
            check(method, template, r)
        seen = {}
        for method, path, template in calls:
            r = alice.request(method, path)
            seen[path] = check(method, template, r)
            assert r.status < 400 or path.endswith(("soon", "none", "=0")), (path, r)
        assert seen["/ringport/v1/gc?grace_s=soon"]["errors"][0]["code"] == "UNSUPPORTED"
        st = seen["/ringport/v1/status"]
        assert st["index"]["repositories"] == 1 and st["index"]["tags"] == 2
        assert st["shard_count"] >= 1 and st["connections"] >= 1 and st["version"]
        m = seen["/ringport/v1/mirrors"]["mirrors"]
        assert [x["prefix"] for x in m] == ["up.test"] and m[0]["upstream_down"] is False
        # Finished runs, with items, and a scrub pass, validate too.
        assert wait_until(lambda: alice.request("GET", "/ringport/v1/retention").json()["phase"]
                          == "done", 10)
        rep = check("GET", "/ringport/v1/retention",
                    alice.request("GET", "/ringport/v1/retention"))
        assert len([i for i in rep["items"] if "tag" in i]) == 1  # keep_last 1 of 2
        assert wait_until(lambda: alice.request("GET", "/ringport/v1/scrub").json()["pass"] >= 1,
                          10)
        check("GET", "/ringport/v1/scrub", alice.request("GET", "/ringport/v1/scrub"))
        r = alice.request("DELETE", "/ringport/v1/repositories/api/app")
        assert r.status == 202
        assert check("DELETE", "/ringport/v1/repositories/{name}", r)["tags"] == 2
        r = alice.request("DELETE", "/ringport/v1/repositories/Bad..Name")
        assert r.status == 400
        check("DELETE", "/ringport/v1/repositories/{name}", r)
    finally:
        srv.cleanup()
        up.close()
        os.unlink(srv.config_path)
