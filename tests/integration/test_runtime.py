# SPDX-License-Identifier: Apache-2.0
"""The runtime owns the process's threads (issue 9).

- Every thread is one the runtime started, in the numbers the config sets
  ([http] shards, [runtime] blocking_threads and background_threads), and
  the background ones run at nice 19.
- A stop is prompt whatever is pending: hour-long duty timers, connections
  stalled mid-request with an hour-long header timeout, idle keep-alive
  connections, an upload session.
"""
import time

import pytest

from ringtest.abuse import threads_of
from ringtest.client import Client
from ringtest.harness import Ringport, wait_until
from ringtest.rawhttp import connect

SETTINGS = {
    "RINGPORT_HTTP_SHARDS": "3",
    "RINGPORT_RUNTIME_BLOCKING_THREADS": "4",
    "RINGPORT_RUNTIME_BACKGROUND_THREADS": "3",
}


@pytest.fixture
def server():
    srv = Ringport(env=SETTINGS)
    srv.start()
    try:
        yield srv
    finally:
        srv.cleanup()


def test_every_thread_is_the_runtimes_in_the_configured_numbers(server):
    server.wait_ready()
    pid = server.proc.pid
    # The loader ends once the index is saved after start; wait for that.
    assert wait_until(lambda: all(n != "rp-loader" for n, _ in threads_of(pid).values()), 20)
    names = {}
    for name, nice in threads_of(pid).values():
        if not name.startswith("iou-wrk-"):  # the kernel's io_uring workers, not ours
            names.setdefault(name, []).append(nice)
    shards = sorted(n for n in names if n.startswith("rp-shard-"))
    assert shards == ["rp-shard-0", "rp-shard-1", "rp-shard-2"], names
    assert len(names.get("rp-hash", [])) == 3, names  # one companion per shard
    assert len(names.get("rp-pool", [])) == 4, names
    assert len(names.get("rp-bg", [])) == 3, names
    assert set(names["rp-bg"]) == {19}, "background threads must yield to the shards"
    assert set(names["rp-pool"]) == {0} and set(names["rp-hash"]) == {0}, names
    expected = set(shards) | {"rp-hash", "rp-pool", "rp-bg", "rp-log", "ringport"}
    assert set(names) <= expected, f"threads no one owns: {set(names) - expected}"
    assert sum(len(v) for v in names.values()) == 3 + 3 + 4 + 3 + 2, names


def test_a_stop_is_prompt_with_long_timers_and_stalled_connections_pending():
    env = dict(SETTINGS)
    env.update({
        "RINGPORT_HTTP_HEADER_TIMEOUT_MS": "3600000",
        "RINGPORT_HTTP_IDLE_TIMEOUT_MS": "3600000",
        "RINGPORT_HTTP_BODY_TIMEOUT_MS": "3600000",
        "RINGPORT_HTTP_DRAIN_TIMEOUT_MS": "300",
        "RINGPORT_STORAGE_UPLOAD_IDLE_TIMEOUT_S": "604800",
        "RINGPORT_STORAGE_INDEX_SNAPSHOT_INTERVAL_S": "86400",
    })
    srv = Ringport(env=env)
    srv.start()
    socks = []
    try:
        srv.wait_ready()
        c = Client(srv.host)
        loc = c.start_upload("stop/prompt")
        assert loc, "no upload session"
        for i in range(100):
            s = connect(srv.host, 5.0)
            if i % 2:
                s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")  # half a head, then nothing
            else:
                s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive, then idle
            socks.append(s)
        assert c.request("GET", "/v2/").status == 200
        t0 = time.monotonic()
        assert srv.stop(timeout_s=30) == 0
        took = time.monotonic() - t0
        # The drain timeout (0.3 s) and the work of stopping; an hour-long
        # timer or timeout waited for instead of cancelled would never fit.
        assert took < 10.0, took
    finally:
        for s in socks:
            s.close()
        srv.cleanup()
