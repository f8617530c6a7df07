# SPDX-License-Identifier: Apache-2.0
"""Webhooks: Distribution's notifications from a durable spool. Events
arrive once each, in order, in Distribution's envelope and with its field
values; an endpoint that is down or failing gets every event in order when
it returns; a kill -9 in the middle of a burst of pushes loses no event of
an acknowledged push; the filters (ignore, ignoredmediatypes) hold."""
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

from ringtest.client import Client, sha256
from ringtest.harness import Ringport, free_port, ringport_bin, wait_until
from ringtest.hooks import Receiver, endpoint_config
from ringtest.images import manifest_for, put
from ringtest.oci import OCI_MANIFEST, random_bytes, unique_name

TIMEOUT_S = 30.0
UA = {"User-Agent": "hooks-test/1.0"}


def config_file(text):
    fd, path = tempfile.mkstemp(suffix=".toml")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def wait_events(rx, n, timeout_s=TIMEOUT_S):
    assert wait_until(lambda: len(rx.events()) >= n, timeout_s), rx.events()
    return rx.events()


def delivered(srv, endpoint):
    """ringport_webhook_delivered_events_total of `endpoint`: what ringport
    knows the endpoint accepted (the receiver may have recorded a POST whose
    answer ringport has not read yet)."""
    text = Client(srv.host).request("GET", "/metrics").body.decode()
    m = re.search(r'^ringport_webhook_delivered_events_total\{endpoint="%s"\} (\d+)'
                  % re.escape(endpoint), text, re.M)
    return int(m.group(1)) if m else 0


def access_ids(srv, method, path_part):
    """Request ids the access log gives requests of `method` on a target
    containing `path_part`."""
    out = []
    for line in srv.err:
        if f'"{method} ' in line and path_part in line:
            m = re.search(r"\bid=([0-9a-f-]{36})\b", line)
            if m:
                out.append(m.group(1))
    return out


def test_every_event_once_in_order_with_distributions_fields():
    with Receiver() as rx:
        cfg = config_file(endpoint_config(
            "ci", rx.url, 'headers = { Authorization = ["Bearer s3cret"], X-Team = ["a", "b"] }'))
        with Ringport(config=cfg) as srv:
            srv.wait_ready()
            c = Client(srv.host)
            repo, other = unique_name("hooks"), unique_name("hooks-src")
            layer = random_bytes(5000, 1)
            layer_d = c.push_blob(repo, layer)
            body = manifest_for(c, repo, [layer])  # config + layer again (no new layer event)
            cfg_d = json.loads(body)["config"]["digest"]
            r = c.request("PUT", f"/v2/{repo}/manifests/v1", body=body,
                          headers={"Content-Type": OCI_MANIFEST, **UA})
            assert r.status == 201, r
            md = sha256(body)
            assert c.request("GET", f"/v2/{repo}/manifests/v1",
                             headers={"Accept": OCI_MANIFEST, **UA}).status == 200
            assert c.request("HEAD", f"/v2/{repo}/manifests/{md}",
                             headers={"Accept": OCI_MANIFEST}).status == 200
            assert c.request("GET", f"/v2/{repo}/blobs/{layer_d}").status == 200
            r = c.request("POST", f"/v2/{other}/blobs/uploads/?mount={layer_d}&from={repo}")
            assert r.status == 201, r
            assert c.request("DELETE", f"/v2/{repo}/manifests/v1").status == 202
            assert c.request("DELETE", f"/v2/{repo}/manifests/{md}").status == 202
            assert c.request("DELETE", f"/v2/{other}/blobs/{layer_d}").status == 202
            # Requests that change or show nothing send nothing.
            assert c.request("GET", f"/v2/{repo}/manifests/nope").status == 404
            assert c.request("PUT", f"/v2/{repo}/manifests/bad", body=b"{",
                             headers={"Content-Type": OCI_MANIFEST}).status == 400

            want = [("push", "application/octet-stream", layer_d, repo),
                    ("push", "application/octet-stream", cfg_d, repo),
                    ("push", "application/octet-stream", layer_d, repo),
                    ("push", OCI_MANIFEST, md, repo),
                    ("pull", OCI_MANIFEST, md, repo),
                    ("pull", OCI_MANIFEST, md, repo),
                    ("pull", "application/octet-stream", layer_d, repo),
                    ("mount", "application/octet-stream", layer_d, other),
                    ("delete", None, None, repo),
                    ("delete", None, md, repo),
                    ("delete", None, layer_d, other)]
            events = wait_events(rx, len(want))
            time.sleep(0.3)  # nothing more comes
            events = rx.events()
            assert [(e["action"], e["target"].get("mediaType"), e["target"].get("digest"),
                     e["target"]["repository"]) for e in events] == want
            assert len({e["id"] for e in events}) == len(events)  # stable, unique ids
            headers = rx.posts[0][0]
            assert headers["Authorization"] == "Bearer s3cret", headers
            assert all(len(check) == 1 for check in
                       (json.loads(b)["events"] for _, b in rx.posts))  # one per envelope

            push_m, pull_tag, head_d = events[3], events[4], events[5]
            host = srv.host
            assert push_m["target"] == {
                "mediaType": OCI_MANIFEST, "size": len(body), "digest": md,
                "length": len(body), "repository": repo,
                "url": f"http://{host}/v2/{repo}/manifests/{md}", "tag": "v1"}
            assert push_m["request"]["method"] == "PUT"
            assert push_m["request"]["useragent"] == "hooks-test/1.0"
            assert push_m["request"]["host"] == host
            assert push_m["request"]["addr"].startswith("127.0.0.1:")
            assert push_m["request"]["id"] in access_ids(srv, "PUT", f"/v2/{repo}/manifests/v1")
            assert push_m["actor"] == {}  # anonymous
            assert push_m["source"]["addr"].endswith(f":{srv.port}")
            assert len({e["source"]["instanceID"] for e in events}) == 1
            assert pull_tag["target"]["tag"] == "v1" and pull_tag["request"]["method"] == "GET"
            assert "tag" not in head_d["target"] and head_d["request"]["method"] == "HEAD"
            blob_push = events[0]["target"]
            assert blob_push == {"mediaType": "application/octet-stream", "size": len(layer),
                                 "digest": layer_d, "length": len(layer), "repository": repo,
                                 "url": f"http://{host}/v2/{repo}/blobs/{layer_d}"}
            assert events[7]["target"]["fromRepository"] == repo
            assert events[7]["target"]["size"] == len(layer)
            assert events[8]["target"] == {"repository": repo, "tag": "v1"}
            assert events[9]["target"] == {"repository": repo, "digest": md}
            assert events[10]["target"] == {"repository": other, "digest": layer_d}
        os.unlink(cfg)


def test_filters_and_references():
    with Receiver() as all_rx, Receiver() as writes_rx, Receiver() as no_blobs_rx:
        cfg = config_file(
            "[notifications.events]\nincludereferences = true\n" +
            endpoint_config("all", all_rx.url) +
            endpoint_config("writes", writes_rx.url, 'ignore = { actions = ["pull"] }') +
            endpoint_config("manifests", no_blobs_rx.url,
                            'ignoredmediatypes = ["application/octet-stream"]\nbatch_events = 50') +
            endpoint_config("off", "http://127.0.0.1:9/", "disabled = true"))
        with Ringport(config=cfg) as srv:
            srv.wait_ready()
            c = Client(srv.host)
            repo = unique_name("filters")
            layer = random_bytes(3000, 2)
            body = manifest_for(c, repo, [layer])
            md = put(c, repo, "t", body)
            assert c.get_manifest(repo, "t", accept=OCI_MANIFEST).status == 200
            wait_events(all_rx, 4)
            wait_events(writes_rx, 3)
            wait_events(no_blobs_rx, 2)
            time.sleep(0.3)
            assert [e["action"] for e in all_rx.events()] == ["push", "push", "push", "pull"]
            assert [e["action"] for e in writes_rx.events()] == ["push"] * 3
            kept = no_blobs_rx.events()
            assert [(e["action"], e["target"]["digest"]) for e in kept] == [("push", md),
                                                                              ("pull", md)]
            m = json.loads(body)
            refs = kept[0]["target"]["references"]
            assert refs == [{"mediaType": d["mediaType"], "size": d["size"], "digest": d["digest"]}
                            for d in [m["config"]] + m["layers"]]
            # The same event carries the same id to every endpoint.
            assert kept[0]["id"] == all_rx.events()[2]["id"]
        os.unlink(cfg)


def test_references_carry_urls_annotations_and_platform_as_distribution_marshals_them():
    """With includereferences, a reference's urls, annotations (sorted by
    key, as Go marshals a map) and platform (in v1.Platform's field order)
    follow its digest, as Distribution's Descriptor has them."""
    with Receiver() as rx:
        cfg = config_file("[notifications.events]\nincludereferences = true\n" +
                          endpoint_config("refs", rx.url, 'ignore = { actions = ["pull"] }'))
        with Ringport(config=cfg) as srv:
            srv.wait_ready()
            c = Client(srv.host)
            repo = unique_name("refs")
            layer = random_bytes(2000, 7)
            body = manifest_for(c, repo, [layer])
            m = json.loads(body)
            m["layers"][0]["annotations"] = {"z.last": "2", "a.first": "<1>"}
            foreign = {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                       "digest": "sha256:" + "ab" * 32, "size": 12345,
                       "urls": ["https://example.com/layer.tar.gz"]}
            m["layers"].append(foreign)
            img = json.dumps(m).encode()
            md = put(c, repo, "img", img)
            idx = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": [{"mediaType": OCI_MANIFEST, "digest": md, "size": len(img),
                                  "platform": {"variant": "v8", "os": "windows",
                                               "architecture": "arm64",
                                               "os.version": "10.0.17763",
                                               "os.features": ["win32k"], "extra": "dropped"}}]}
            ib = json.dumps(idx).encode()
            put(c, repo, "idx", ib, "application/vnd.oci.image.index.v1+json")
            events = wait_events(rx, 4)  # the layer blob, config, the image, the index
            by_digest = {e["target"]["digest"]: e for e in events}
            refs = by_digest[md]["target"]["references"]
            assert refs[1]["annotations"] == {"a.first": "<1>", "z.last": "2"}
            assert list(refs[1]["annotations"]) == ["a.first", "z.last"]
            assert refs[2] == {"mediaType": foreign["mediaType"], "size": 12345,
                               "digest": foreign["digest"], "urls": foreign["urls"]}
            assert list(refs[2]) == ["mediaType", "size", "digest", "urls"]
            assert "annotations" not in refs[0] and "platform" not in refs[0]
            (child,) = by_digest[sha256(ib)]["target"]["references"]
            assert child["platform"] == {"architecture": "arm64", "os": "windows",
                                         "os.version": "10.0.17763", "os.features": ["win32k"],
                                         "variant": "v8"}
            assert list(child["platform"]) == ["architecture", "os", "os.version",
                                               "os.features", "variant"]
        os.unlink(cfg)


def test_endpoint_down_then_failing_then_back_gets_everything_in_order():
    rx = Receiver()  # not started: connections are refused
    cfg = config_file(endpoint_config("late", rx.url))
    with Ringport(config=cfg) as srv:
        srv.wait_ready()
        c = Client(srv.host)
        repo = unique_name("down")
        pushed = [c.push_blob(repo, random_bytes(100, 1000 + i)) for i in range(40)]
        time.sleep(0.5)  # a few failed attempts
        rx.status = 503
        rx.start()
        assert wait_until(lambda: rx.refused >= 1, TIMEOUT_S)  # it answers, with an error
        pushed += [c.push_blob(repo, random_bytes(100, 2000 + i)) for i in range(10)]
        assert rx.events() == []
        rx.status = 200
        events = wait_events(rx, len(pushed))
        time.sleep(0.3)
        events = rx.events()
        assert [e["target"]["digest"] for e in events] == pushed  # once each, in order
        rx.stop()
    os.unlink(cfg)


def test_a_restart_resends_nothing_accepted_and_keeps_what_was_not():
    rx = Receiver().start()
    root = tempfile.mkdtemp(prefix="ringport-hooks-")
    cfg = config_file(endpoint_config("keep", rx.url))
    repo = unique_name("restart")
    with Ringport(root=root, config=cfg) as srv:
        srv.wait_ready()
        c = Client(srv.host)
        first = [c.push_blob(repo, random_bytes(64, 3000 + i)) for i in range(5)]
        wait_events(rx, 5)
        # Down only once ringport has its answers: a POST recorded whose
        # answer the stop cut would be sent again (at least once), and
        # this test counts exactly once.
        assert wait_until(lambda: delivered(srv, "keep") == 5, TIMEOUT_S)
        rx.stop()
        second = [c.push_blob(repo, random_bytes(64, 3100 + i)) for i in range(5)]
    # Stopped with five events undelivered: they wait in the spool.
    assert os.listdir(os.path.join(root, ".ringport.spool"))
    rx.start()
    with Ringport(root=root, config=cfg) as srv:
        srv.wait_ready()
        wait_events(rx, 10)
        time.sleep(0.5)
        assert [e["target"]["digest"] for e in rx.events()] == first + second
    rx.stop()
    os.unlink(cfg)


def test_kill_9_in_a_burst_loses_no_acknowledged_push():
    rx = Receiver().start()
    root = tempfile.mkdtemp(prefix="ringport-hooks-kill-")
    cfg = config_file(endpoint_config("burst", rx.url))
    acked, lock = [], threading.Lock()
    srv = Ringport(root=root, config=cfg).start()
    srv.wait_ready()
    stop = threading.Event()

    def pusher(k):
        c = Client(srv.host)
        repo = f"burst/p{k}"
        for i in range(400):  # bounded; the kill ends it sooner
            if stop.is_set():
                return
            data = random_bytes(200, 10000 * (k + 1) + i)
            try:
                r = c.request("POST", f"/v2/{repo}/blobs/uploads/?digest={sha256(data)}",
                              body=data)
            except OSError:
                return
            if r.status == 201:
                with lock:
                    acked.append((repo, sha256(data)))

    threads = [threading.Thread(target=pusher, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    assert wait_until(lambda: len(acked) >= 60, TIMEOUT_S)
    srv.kill()  # SIGKILL, pushes in flight
    stop.set()
    for t in threads:
        t.join(TIMEOUT_S)
    srv.cleanup()
    with Ringport(root=root, config=cfg) as again:
        again.wait_ready()

        def all_there():
            got = {(e["target"]["repository"], e["target"]["digest"]) for e in rx.events()}
            return all(a in got for a in acked)
        assert wait_until(all_there, TIMEOUT_S), len(acked)
        # Per repository, events come in the order the pushes were answered.
        events = rx.events()
        seen = []
        for e in events:
            k = (e["target"]["repository"], e["target"]["digest"])
            if k not in seen:
                seen.append(k)
        for repo in {a[0] for a in acked}:
            mine = [a for a in acked if a[0] == repo]
            order = [k for k in seen if k in mine]
            assert order == mine, repo
    rx.stop()
    os.unlink(cfg)


def test_concurrent_clients_events_each_once_in_each_clients_order():
    """Pulls are queued per shard and numbered by the spool's writer: with
    four clients pulling and pushing at once, each on a new connection (so
    on either shard), every event arrives once, and each client's events in
    the order it made them (a pull, then its next request on the other
    shard, never the other way round)."""
    with Receiver() as rx:
        cfg = config_file(endpoint_config("busy", rx.url, "batch_events = 50"))
        with Ringport(config=cfg) as srv:
            srv.wait_ready()
            c = Client(srv.host)
            repo = unique_name("busy")
            digests = []
            for t in range(3):  # three manifests, so that two pulls in a row differ
                body = manifest_for(c, repo, [random_bytes(300, 77 + t)])
                assert c.request("PUT", f"/v2/{repo}/manifests/t{t}", body=body,
                                 headers={"Content-Type": OCI_MANIFEST}).status == 201
                digests.append(sha256(body))
            base = len(wait_events(rx, 9))  # configs, layers and manifests pushed
            made, failures = {}, []

            def client(k):
                me = Client(srv.host)
                ua = {"User-Agent": f"busy-{k}", "Accept": OCI_MANIFEST}
                mine = []
                for i in range(60):
                    if i % 10 == 9:
                        d = me.push_blob(repo, random_bytes(64, 50000 + 100 * k + i))
                        mine.append(("push", d))
                    else:
                        r = me.request("GET", f"/v2/{repo}/manifests/t{i % 3}", headers=ua)
                        if r.status != 200:
                            failures.append(r)
                        mine.append(("pull", digests[i % 3]))
                made[k] = mine

            threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(TIMEOUT_S)
            assert not failures, failures[:3]
            events = wait_events(rx, base + 240)
            time.sleep(0.3)  # nothing more comes
            events = rx.events()[base:]
            assert len(events) == 240
            assert len({e["id"] for e in events}) == 240
            for k in range(4):
                # A client's pushes carry Python's agent; its pulls its own.
                # Pushes are matched by digest, pulls by agent.
                pushed = {d for a, d in made[k] if a == "push"}
                got = [(e["action"], e["target"]["digest"]) for e in events
                       if e["request"]["useragent"] == f"busy-{k}"
                       or (e["action"] == "push" and e["target"]["digest"] in pushed)]
                assert got == made[k], k


def test_the_bench_sink_counts_what_ringport_delivers():
    """bench/observe.py measures webhooks against `ringport-bench
    webhook-sink`: it must count exactly the events and POSTs ringport
    reports delivered."""
    bench = os.path.join(os.path.dirname(os.path.dirname(ringport_bin())), "bench",
                         "ringport-bench")
    port = free_port()
    sink = subprocess.Popen([bench, "webhook-sink", "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert sink.stdout.readline().strip() == f"listening on 127.0.0.1:{port}"

        def counts():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=5) as r:
                return json.loads(r.read())
        cfg = config_file(endpoint_config("bench", f"http://127.0.0.1:{port}/hook",
                                          "batch_events = 7"))
        with Ringport(config=cfg) as srv:
            srv.wait_ready()
            c = Client(srv.host)
            repo = unique_name("sink")
            body = manifest_for(c, repo, [random_bytes(100, 5)])
            assert c.request("PUT", f"/v2/{repo}/manifests/v1", body=body,
                             headers={"Content-Type": OCI_MANIFEST}).status == 201
            for _ in range(40):
                assert c.request("GET", f"/v2/{repo}/manifests/v1",
                                 headers={"Accept": OCI_MANIFEST}).status == 200

            assert wait_until(lambda: delivered(srv, "bench") >= 43, TIMEOUT_S)
            got = counts()
            assert got["events"] == delivered(srv, "bench") == 43  # config, layer, manifest, 40 pulls
            assert got["posts"] >= 43 // 7
        os.unlink(cfg)
    finally:
        sink.kill()
        sink.wait()


def test_bad_notification_config_is_refused():
    for text, why in [
        ('[[notifications.endpoints]]\nname = "x"\n', "name and url are required"),
        ('[[notifications.endpoints]]\nname = "x"\nurl = "ftp://h/"\n', "http"),
        ('[[notifications.endpoints]]\nname = "x"\nurl = "http://h/"\ntimeout = "soon"\n',
         "duration"),
        ('[[notifications.endpoints]]\nname = "x"\nurl = "http://h/"\n'
         '[[notifications.endpoints]]\nname = "x"\nurl = "http://h/"\n', "used twice"),
        ('[[notifications.endpoints]]\nname = "x"\nurl = "http://h/"\nignore = { actions = '
         '["fetch"] }\n', "fetch"),
        ('[[notifications.endpoints]]\nname = "x"\nurl = "http://h/"\nretries = 3\n',
         "unknown key"),
    ]:
        cfg = config_file(text)
        srv = Ringport(config=cfg)
        with pytest.raises(RuntimeError) as e:
            srv.start()
        assert why in str(e.value), (text, str(e.value))
        srv.cleanup()
        os.unlink(cfg)
