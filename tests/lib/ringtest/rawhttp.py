# SPDX-License-Identifier: Apache-2.0
"""Raw-socket HTTP/1.1 for robustness tests.

http.client refuses to send malformed requests and hides how a connection
ends, so these helpers talk to the server byte by byte. Every socket has a
timeout and every loop is bounded by a deadline, so a misbehaving server makes
a test fail instead of hang.

- `RawConn(host)`: one TCP connection. `send()` writes bytes and stops early
  (without raising) when the server answers or closes first; `read_response()`
  parses one response; `wait_closed()` tells whether and when the server closed.
- `parse_response(data, method)`: one response out of bytes already received.
- `one_shot(host, data)`: connect, send, read one response, report the close.
"""
import json
import select
import socket
import struct
import time

DEFAULT_TIMEOUT_S = 5.0
HEAD_BYTES_MAX = 1 << 20        # a response head larger than this is a server bug
BODY_BYTES_MAX = 256 << 20      # bound on what one response may make us buffer
SEND_CHUNK_BYTES = 64 << 10


class ProtocolError(Exception):
    """The server sent bytes that are not a valid HTTP/1.x response."""


class Closed(Exception):
    """The server closed (or reset) the connection before a full response."""

    def __init__(self, msg, partial=b""):
        super().__init__(msg)
        self.partial = partial


class RawResponse:
    def __init__(self, version, status, reason, headers, body, head_bytes):
        self.version = version        # "HTTP/1.1"
        self.status = status          # int
        self.reason = reason
        self.headers = headers        # list of (name, value), as received
        self.body = body              # bytes (de-chunked)
        self.head_bytes = head_bytes  # the raw status line + headers

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def json(self):
        return json.loads(self.body)

    def error_codes(self):
        try:
            return [e["code"] for e in self.json()["errors"]]
        except Exception:
            return []

    def says_close(self):
        """True when the response announces that the server will close."""
        tokens = ",".join(self.header_all("Connection")).lower()
        return "close" in [t.strip() for t in tokens.split(",")]

    def __repr__(self):
        return f"RawResponse({self.status}, {self.headers}, {self.body[:300]!r})"


class CloseResult:
    """How a connection ended while we waited for it to end."""

    def __init__(self, closed, reset, data, elapsed_s):
        self.closed = closed        # the server closed or reset within the wait
        self.reset = reset          # it was an RST rather than an orderly FIN
        self.data = data            # bytes that arrived before the end
        self.elapsed_s = elapsed_s  # seconds from the start of the wait to the end

    def __repr__(self):
        return (f"CloseResult(closed={self.closed}, reset={self.reset}, "
                f"elapsed={self.elapsed_s:.3f}s, data={self.data[:200]!r})")


def split_host(host):
    h, p = host.rsplit(":", 1)
    return h, int(p)


def connect(host, timeout_s=DEFAULT_TIMEOUT_S):
    """A connected TCP socket with a timeout, or raises OSError (ECONNREFUSED...)."""
    s = socket.create_connection(split_host(host), timeout=timeout_s)
    s.settimeout(timeout_s)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _no_body(method, status):
    return method == "HEAD" or 100 <= status < 200 or status in (204, 304)


class RawConn:
    """One client connection with a receive buffer shared by all reads."""

    def __init__(self, host, timeout_s=DEFAULT_TIMEOUT_S, sock=None):
        self.host = host
        self.timeout_s = timeout_s
        self.sock = sock if sock is not None else connect(host, timeout_s)
        self.buf = bytearray()
        self.eof = False      # the server's FIN (or RST) was seen
        self.reset = False    # the end was an RST

    # --- sending ---------------------------------------------------------
    def send(self, data, timeout_s=None, stop_on_readable=True):
        """Write `data`; returns the number of bytes the kernel accepted.

        Stops early, without raising, when the server resets the connection or
        (with stop_on_readable) when it starts answering before the request is
        complete: a server may reject a request after its head and close.
        """
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        view = memoryview(bytes(data))
        sent = 0
        while sent < len(view):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            rd = [self.sock] if stop_on_readable else []
            r, w, _ = select.select(rd, [self.sock], [], min(left, 0.5))
            if r:
                break
            if not w:
                continue
            try:
                n = self.sock.send(view[sent:sent + SEND_CHUNK_BYTES])
            except (BrokenPipeError, ConnectionResetError):
                self.reset = True
                break
            except socket.timeout:
                continue
            sent += n
        return sent

    def send_all(self, data, timeout_s=None):
        """Write everything or fail the test."""
        n = self.send(data, timeout_s=timeout_s, stop_on_readable=False)
        assert n == len(data), f"only {n} of {len(data)} bytes could be sent"

    def trickle(self, data, interval_s, max_s):
        """Send one byte every interval_s until the server closes or max_s passes.

        Returns (bytes sent, seconds elapsed). A slow-loris client.
        """
        t0 = time.monotonic()
        sent = 0
        while sent < len(data) and time.monotonic() - t0 < max_s:
            r, _, _ = select.select([self.sock], [], [], 0)
            if r:
                break  # the server answered or closed
            try:
                self.sock.send(data[sent:sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                self.reset = True
                break
            sent += 1
            time.sleep(interval_s)
        return sent, time.monotonic() - t0

    # --- receiving -------------------------------------------------------
    def _fill(self, deadline):
        """Receive more bytes into buf; False at EOF/RST. Raises socket.timeout at deadline."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline passed")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(256 << 10)
        except ConnectionResetError:
            self.eof = self.reset = True
            return False
        finally:
            self.sock.settimeout(self.timeout_s)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _need(self, n, deadline, what):
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise Closed(f"connection closed while reading {what}", bytes(self.buf))

    def _read_line(self, deadline, what):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > HEAD_BYTES_MAX:
                raise ProtocolError(f"{what} line too long")
            if not self._fill(deadline):
                raise Closed(f"connection closed while reading {what}", bytes(self.buf))

    def _read_head(self, deadline):
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.buf[:i + 4])
                del self.buf[:i + 4]
                return head
            if len(self.buf) > HEAD_BYTES_MAX:
                raise ProtocolError("response head too large")
            if not self._fill(deadline):
                raise Closed("connection closed before a full response head", bytes(self.buf))

    def _read_chunked(self, deadline):
        body = bytearray()
        while True:
            line = self._read_line(deadline, "chunk size")
            size_txt = line.split(b";", 1)[0].strip()
            try:
                size = int(size_txt, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {line!r}")
            if size == 0:
                while self._read_line(deadline, "trailer"):
                    pass
                return bytes(body)
            if len(body) + size > BODY_BYTES_MAX:
                raise ProtocolError("chunked body too large")
            self._need(size + 2, deadline, "chunk")
            body += self.buf[:size]
            if self.buf[size:size + 2] != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")
            del self.buf[:size + 2]

    def read_response(self, method="GET", timeout_s=None, skip_interim=True):
        """Read exactly one response (interim 1xx skipped). Raises Closed/ProtocolError."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            head = self._read_head(deadline)
            resp = _parse_head(head)
            if skip_interim and 100 <= resp.status < 200:
                continue
            break
        if _no_body(method, resp.status):
            return resp
        te = (resp.header("Transfer-Encoding") or "").lower()
        cl = resp.header("Content-Length")
        if "chunked" in te:
            resp.body = self._read_chunked(deadline)
        elif cl is not None:
            n = int(cl)
            if n > BODY_BYTES_MAX:
                raise ProtocolError(f"Content-Length {n} too large for a test")
            self._need(n, deadline, "body")
            resp.body = bytes(self.buf[:n])
            del self.buf[:n]
        else:  # delimited by close
            while self._fill(deadline):
                if len(self.buf) > BODY_BYTES_MAX:
                    raise ProtocolError("close-delimited body too large")
            resp.body = bytes(self.buf)
            self.buf.clear()
        return resp

    def request(self, method, path, headers=None, body=b"", timeout_s=None):
        """Send a well-formed request on this connection and read its response."""
        self.send_all(build_request(method, path, headers, body), timeout_s)
        return self.read_response(method, timeout_s)

    def wait_closed(self, timeout_s):
        """Read until the server closes or timeout_s passes; never raises for a close."""
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        start_len = len(self.buf)
        try:
            while self._fill(deadline):
                if len(self.buf) > BODY_BYTES_MAX:
                    break
        except socket.timeout:
            return CloseResult(False, False, bytes(self.buf[start_len:]), time.monotonic() - t0)
        return CloseResult(True, self.reset, bytes(self.buf[start_len:]), time.monotonic() - t0)

    def is_open(self, wait_s=0.0):
        """True when the server has not closed; waits up to wait_s for a close."""
        if self.eof:
            return False
        r, _, _ = select.select([self.sock], [], [], wait_s)
        if not r:
            return True
        try:
            chunk = self.sock.recv(65536, socket.MSG_PEEK)
        except ConnectionResetError:
            self.eof = self.reset = True
            return False
        if not chunk:
            self.eof = True
            return False
        return True  # unsolicited bytes, but still open

    # --- ending ----------------------------------------------------------
    @property
    def local_port(self):
        return self.sock.getsockname()[1]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Close with an RST (SO_LINGER 0), as a crashing client would."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _parse_head(head):
    lines = head[:-4].split(b"\r\n")
    status_line = lines[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"bad status line {status_line!r}")
    headers = []
    for raw in lines[1:]:
        if b":" not in raw:
            raise ProtocolError(f"bad response header {raw!r}")
        k, v = raw.split(b":", 1)
        headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
    reason = parts[2] if len(parts) > 2 else ""
    return RawResponse(parts[0], int(parts[1]), reason, headers, b"", head)


def parse_response(data, method="GET"):
    """The first response in `data` (bytes already received), or None if incomplete."""
    conn = RawConn.__new__(RawConn)
    conn.sock = None
    conn.buf = bytearray(data)
    conn.eof = True
    conn.reset = False
    conn.timeout_s = 0
    try:
        return conn.read_response(method, timeout_s=1.0)
    except (Closed, ProtocolError):
        return None


def build_request(method, path, headers=None, body=b"", version="HTTP/1.1", host="ringtest"):
    """A well-formed request; adds Host and, for a body, Content-Length unless given."""
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    given = {k.lower() for k, _ in items}
    hs = ([] if "host" in given else [("Host", host)]) + items
    if body and "content-length" not in given and "transfer-encoding" not in given:
        hs.append(("Content-Length", str(len(body))))
    out = f"{method} {path} {version}\r\n".encode("latin-1")
    for k, v in hs:
        out += f"{k}: {v}\r\n".encode("latin-1")
    return out + b"\r\n" + (body or b"")


def chunked(data, sizes):
    """`data` in Transfer-Encoding: chunked framing, cut at `sizes` (cycled)."""
    out = bytearray()
    off, i = 0, 0
    while off < len(data):
        n = sizes[i % len(sizes)]
        part = data[off:off + n]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
        off += len(part)
        i += 1
    return bytes(out + b"0\r\n\r\n")


class OneShot:
    """What happened to one request on a fresh connection."""

    def __init__(self, response, close, sent):
        self.response = response  # RawResponse or None (closed without one)
        self.close = close        # CloseResult after the response
        self.sent = sent          # bytes of the request the server let us send

    def __repr__(self):
        return f"OneShot(sent={self.sent}, response={self.response!r}, close={self.close!r})"


def one_shot(host, data, method="GET", timeout_s=DEFAULT_TIMEOUT_S, close_wait_s=2.0):
    """Connect, send `data`, read one response, then wait up to close_wait_s for a close."""
    with RawConn(host, timeout_s) as c:
        sent = c.send(data, timeout_s=timeout_s)
        try:
            resp = c.read_response(method, timeout_s=timeout_s)
        except Closed as e:
            resp = parse_response(e.partial, method)
        close = c.wait_closed(close_wait_s) if close_wait_s else None
        return OneShot(resp, close, sent)
