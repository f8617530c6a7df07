# SPDX-License-Identifier: Apache-2.0
"""A webhook endpoint for the notification tests: it records every envelope
POSTed to it, can answer errors, and can go down and come back on the same
port. `check_event` is a consumer written against Distribution's documented
event format (distribution_events.schema.json): it accepts exactly the
fields Distribution 2.8 sends, with their types."""
import json
import os
import threading
from http.server import ThreadingHTTPServer

import jsonschema

from ringtest.harness import OpenConnections, free_port

ENVELOPE_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"

with open(os.path.join(os.path.dirname(__file__), "distribution_events.schema.json")) as _f:
    SCHEMA = json.load(_f)


def check_envelope(body):
    """Parses and validates an envelope as a Distribution consumer would;
    returns its events."""
    env = json.loads(body)
    jsonschema.validate(env, SCHEMA)
    return env["events"]


class Receiver:
    """POST / records the envelope and answers `status` (200 unless set)."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.posts = []  # (headers, body) of every POST answered 2xx
        self.refused = 0  # POSTs answered with an error status
        self.status = 200
        self.server = None
        self.thread = None
        self.conns = OpenConnections()  # cut by stop()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self):
        owner = self

        class Handler(self.conns.handler()):

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with owner.lock:
                    status = owner.status
                    if 200 <= status < 400:
                        owner.posts.append((dict(self.headers), body))
                    else:
                        owner.refused += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Down: the port refuses connections until start(), and the
        keep-alive connections already open are cut (their handler threads
        would otherwise go on taking POSTs)."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        self.conns.cut()

    def events(self):
        """Every event received, in the order received, each envelope checked."""
        with self.lock:
            posts = list(self.posts)
        out = []
        for headers, body in posts:
            assert headers.get("Content-Type") == ENVELOPE_MEDIA_TYPE, headers
            out.extend(check_envelope(body))
        return out

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def endpoint_config(name, url, extra=""):
    return f"""
[[notifications.endpoints]]
name = "{name}"
url = "{url}"
timeout = "2s"
threshold = 2
backoff = "100ms"
{extra}
"""
