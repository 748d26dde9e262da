"""A misbehaving FHIR server for the security tests: real sockets on loopback, one thread per connection.

`responses` replaces the HTTP adapter, so it cannot show what the real client does with a redirect,
a dripping body, a gzip bomb or a URL two parsers read differently. This server can: each test maps
paths to behaviours (`answer`, `redirect`, `drip`, `huge`, `gzip_bomb`, `hang`), and the server
records every request it received (path, Authorization header) and the bytes it managed to send.
Everything listens on 127.0.0.1 on a port the OS picks, and stops at the end of the test.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Behaviour = Callable[["Handler"], None]


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None
    traceparent: str | None


@dataclass
class FakeFhir:
    """A server whose `routes` map a path (exact, or a prefix ending in `*`) to a behaviour."""

    routes: dict[str, Behaviour] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)  # path -> body bytes written before the end
    closed_at: dict[str, float] = field(default_factory=dict)  # path -> when its handler stopped
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        fake = self

        class _Handler(Handler):
            server_fake = fake

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}"

    @property
    def base(self) -> str:
        return f"{self.origin}/fhir"

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def behaviour(self, path: str) -> Behaviour | None:
        bare = path.split("?", 1)[0]
        if path in self.routes:
            return self.routes[path]
        if bare in self.routes:
            return self.routes[bare]
        for pattern, behaviour in self.routes.items():
            if pattern.endswith("*") and path.startswith(pattern[:-1]):
                return behaviour
        return None


class Handler(BaseHTTPRequestHandler):
    server_fake: FakeFhir
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        fake = self.server_fake
        fake.seen.append(Seen(self.command, self.path, self.headers.get("Authorization"),
                              self.headers.get("traceparent")))
        behaviour = fake.behaviour(self.path)
        try:
            if behaviour is None:
                answer(404, {"resourceType": "OperationOutcome"})(self)
            else:
                behaviour(self)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        finally:
            fake.closed_at[self.path] = time.monotonic()

    do_GET = _serve
    do_POST = _serve

    def write_body(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()
        fake = self.server_fake
        fake.sent[self.path] = fake.sent.get(self.path, 0) + len(data)


# --- behaviours ------------------------------------------------------------------------------------


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Behaviour:
    data = json.dumps(body).encode()

    def run(h: Handler) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/fhir+json")
        h.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.write_body(data)

    return run


def redirect(location: str, status: int = 302) -> Behaviour:
    def run(h: Handler) -> None:
        h.send_response(status)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return run


def drip(interval: float, total: int = 10_000) -> Behaviour:
    """Announce a body of `total` bytes, then send one byte every `interval` seconds."""

    def run(h: Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/fhir+json")
        h.send_header("Content-Length", str(total))
        h.end_headers()
        for _ in range(total):
            if h.server_fake.stop.wait(interval):
                return
            h.write_body(b" ")

    return run


def drip_headers(interval: float) -> Behaviour:
    """Send the status line and headers one byte at a time."""

    def run(h: Handler) -> None:
        head = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 10_000 + b"\r\n\r\n"
        for byte in head:
            if h.server_fake.stop.wait(interval):
                return
            h.wfile.write(bytes([byte]))
            h.wfile.flush()

    return run


def huge(total: int, *, announce: bool = True, chunk: int = 64 * 1024) -> Behaviour:
    """A body of `total` bytes (a JSON string), with or without Content-Length."""

    def run(h: Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/fhir+json")
        if announce:
            h.send_header("Content-Length", str(total))
        else:
            h.send_header("Connection", "close")
        h.end_headers()
        left = total
        while left > 0 and not h.server_fake.stop.is_set():
            part = min(chunk, left)
            h.write_body(b"x" * part)
            left -= part

    return run


_BOMBS: dict[int, bytes] = {}


def gzip_bomb(inflated: int) -> Behaviour:
    """A small gzip body that inflates to `inflated` bytes (zeros)."""
    if inflated not in _BOMBS:
        _BOMBS[inflated] = gzip.compress(b"\0" * inflated, compresslevel=9)
    data = _BOMBS[inflated]

    def run(h: Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/fhir+json")
        h.send_header("Content-Encoding", "gzip")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.write_body(data)

    return run


def hang() -> Behaviour:
    """Read the request, then never answer (until the server stops)."""

    def run(h: Handler) -> None:
        h.server_fake.stop.wait(30)

    return run


class BlackHole:
    """A TCP listener that accepts connections and never says a word (a hung database or server)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections.append(conn)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        for conn in self.connections:
            conn.close()
        self.sock.close()


class FreezableProxy:
    """A TCP proxy to 127.0.0.1:`target` that can stop forwarding (`freeze`) without closing anything:
    to the client, a server that is still connected but has stopped answering."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.frozen = threading.Event()
        self._stop = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._sockets: list[socket.socket] = [self.sock]
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        self.frozen.set()

    def thaw(self) -> None:
        self.frozen.clear()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.1)
        while not self._stop.is_set():
            if self.frozen.is_set():
                time.sleep(0.05)
                continue
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
