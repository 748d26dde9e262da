"""`fhir-vcf serve` against slow and greedy clients, and its sizing for a CPU-bound service (issues 10, 11.3, 13.16).

The integration tests start the real server (gunicorn, one worker) on a loopback port the OS picks;
the others test the pieces (`DeadlineSocket`, `ReadBody`, `cpu_quota`, the options) directly.
"""

from __future__ import annotations

import gc
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cards import hook_request

from fhir_vcf import server
from fhir_vcf.config import Settings
from fhir_vcf.sources.prefetch import PREFETCH_TEMPLATES

ROOT = Path(__file__).resolve().parent.parent


# --- the pieces -------------------------------------------------------------------------------------


def test_cpu_quota_reads_cgroup_v2_and_v1(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert server.cpu_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert server.cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert server.cpu_quota(tmp_path) == 2.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    assert server.cpu_quota(tmp_path) is None
    assert server.cpu_quota(tmp_path / "nothing-here") is None


def test_workers_follow_the_setting_else_the_usable_cpus(monkeypatch):
    assert server.default_workers(Settings(workers=3)) == 3
    monkeypatch.setattr(server, "cpu_quota", lambda root=None: 1.5)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert server.default_workers(Settings()) == 2  # a quota of 1.5 CPUs: two workers, not four
    monkeypatch.setattr(server, "cpu_quota", lambda root=None: None)
    assert server.default_workers(Settings()) == 4
    assert Settings.from_env({"FHIR_VCF_WORKERS": "5", "FHIR_VCF_THREADS": "3"}).workers == 5


def test_gunicorn_options_guard_slow_clients_and_turn_the_control_socket_off():
    options = server.gunicorn_options(Settings(threads=6), "127.0.0.1", 8080, 2)
    assert options["worker_class"] is server.GuardedThreadWorker
    assert options["threads"] == 6 and options["workers"] == 2
    assert options["control_socket_disable"] is True
    assert options["post_worker_init"] is server._post_worker_init
    assert options["limit_request_line"] and options["limit_request_fields"] and options["limit_request_field_size"]


class _Request:
    """The part of gunicorn's request that `GuardedThreadWorker.handle_request` touches."""

    must_close = False

    def force_close(self):
        self.must_close = True


def _worker(workers: int) -> server.GuardedThreadWorker:
    worker = object.__new__(server.GuardedThreadWorker)  # no gunicorn arbiter: only what handle_request reads
    worker.cfg = type("Cfg", (), {"workers": workers})()
    return worker


def test_a_busy_worker_hands_its_connections_back_and_an_idle_one_keeps_them(monkeypatch):
    answered = []

    def answer(self, req, conn):
        answered.append((req.must_close, self._in_flight))
        if conn == "fails":
            raise RuntimeError("the app broke")
        if conn == "while-another-arrives":
            second = _Request()
            server.GuardedThreadWorker.handle_request(self, second, "plain")  # a second call, same worker
            answered.append(("second closed", second.must_close))

    monkeypatch.setattr(server.ThreadWorker, "handle_request", answer)
    worker = _worker(workers=2)
    alone = _Request()
    worker.handle_request(alone, "plain")
    assert answered == [(False, 1)] and not alone.must_close  # idle: the connection stays kept alive

    answered.clear()
    worker.handle_request(_Request(), "while-another-arrives")
    # the first call kept its connection; the one that arrived while it ran is closed after its answer
    assert answered == [(False, 1), (True, 2), ("second closed", True)]

    with pytest.raises(RuntimeError):
        worker.handle_request(_Request(), "fails")
    assert worker._in_flight == 0  # counted down whatever happened

    single = _worker(workers=1)  # no sibling to hand the connection to
    single._in_flight = 1
    lone = _Request()
    single.handle_request(lone, "plain")
    assert not lone.must_close


def test_a_deadline_socket_stops_waiting_for_a_slow_client():
    ours, theirs = socket.socketpair()
    guarded = server.DeadlineSocket(ours.family, ours.type, ours.proto, fileno=ours.detach())
    guarded.read_timeout = 0.4
    try:
        guarded.setblocking(True)  # a thread takes the request: the deadline starts
        started = time.monotonic()
        received = b""
        with pytest.raises(ConnectionResetError):
            while True:
                theirs.sendall(b"x")  # one byte every 0.1 s: no single read ever times out
                received += guarded.recv(10)
                time.sleep(0.1)
        assert 0.3 < time.monotonic() - started < 1.0 and received
        guarded.setblocking(False)  # back to the event loop: no deadline
        guarded.setblocking(True)  # the next request has its own
        theirs.sendall(b"y")
        assert guarded.recv(10).endswith(b"y")
    finally:
        guarded.close()
        theirs.close()


def _call(app, environ):
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


def test_read_body_reads_once_and_refuses_too_much_or_too_late():
    def inner(environ, start_response):
        start_response("200 OK", [])
        return [environ["wsgi.input"].read()]

    app = server.ReadBody(inner, limit=10)
    status, _, body = _call(app, {"wsgi.input": io.BytesIO(b"hello"), "CONTENT_LENGTH": "5"})
    assert status == "200 OK" and body == b"hello"
    status, headers, body = _call(app, {"wsgi.input": io.BytesIO(b""), "CONTENT_LENGTH": "50000"})
    assert status.startswith("413") and headers["Connection"] == "close" and json.loads(body)["status"] == 413
    status, headers, body = _call(app, {"wsgi.input": io.BytesIO(b""), "CONTENT_LENGTH": "50000",
                                        "PATH_INFO": "/cds-services/vcf-patient-view"})
    assert json.loads(body)["issue"][0]["code"] == "too-costly"  # OperationOutcome under /cds-services

    class Late(io.RawIOBase):
        def read(self, size=-1):
            raise ConnectionResetError(104, "late")

    status, headers, _ = _call(app, {"wsgi.input": Late(), "CONTENT_LENGTH": "5"})
    assert status.startswith("408") and headers["Connection"] == "close"
    status, _, _ = _call(app, {"wsgi.input": io.BytesIO(b"x" * 11), "HTTP_TRANSFER_ENCODING": "chunked"})
    assert status.startswith("413")


def test_warm_up_freezes_what_the_worker_holds(tmp_path):
    from fhir_vcf.app import create_app

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'w.db'}"))
    thresholds = gc.get_threshold()
    try:
        server.warm_and_freeze(app)
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold() == server.GC_THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


# --- the real server ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`fhir-vcf serve` with one worker, a 1 s request read deadline, HOME in a temporary folder."""
    tmp = tmp_path_factory.mktemp("serve")
    port = _free_port()
    env = dict(os.environ, HOME=str(tmp), FHIR_VCF_DATABASE_URL=f"sqlite:///{tmp / 'serve.db'}",
               FHIR_VCF_REQUEST_READ_TIMEOUT="1", FHIR_VCF_THREADS="4", FHIR_VCF_LOG_LEVEL="WARNING")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("XDG_RUNTIME_DIR", None)
    log = (tmp / "serve.log").open("wb")
    command = [sys.executable, "-c", "import sys; from fhir_vcf.cli import main; sys.exit(main())"]
    child = subprocess.Popen([*command, "serve", "--port", str(port), "--workers", "1"],
                             env=env, stdout=log, stderr=log, cwd=tmp, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline or child.poll() is not None:
                    raise RuntimeError((tmp / "serve.log").read_text()) from None
                time.sleep(0.2)
        yield port, tmp
    finally:
        child.terminate()
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)
        log.close()


def _healthz_seconds(port: int) -> float:
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/healthz")
    assert connection.getresponse().status == 200
    return time.monotonic() - started


def test_slow_bodies_do_not_stall_the_service(served):
    """Ten connections announcing a body and sending a byte now and then stalled /healthz."""
    port, _ = served
    slow = []
    for _ in range(10):
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(b"POST /cds-services/vcf-patient-view HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
        slow.append(client)
    try:
        time.sleep(0.2)
        assert _healthz_seconds(port) < 3.5  # 4 threads, 10 slow clients, each cut after 1 s
        for client in slow:
            client.settimeout(5)
            assert client.recv(64).startswith(b"HTTP/1.1 408")
    finally:
        for client in slow:
            client.close()


def test_a_slow_request_head_is_cut_off(served):
    port, _ = served
    client = socket.create_connection(("127.0.0.1", port))
    client.settimeout(5)
    started = time.monotonic()
    try:
        with pytest.raises(OSError):
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
                client.sendall(bytes([byte]))
                time.sleep(0.05)
            client.recv(1)  # the server closed the connection: nothing, or a reset
            raise OSError("closed")
        assert time.monotonic() - started < 4
    finally:
        client.close()


def test_a_hook_call_and_an_oversized_body_through_the_real_server(served):
    port, _ = served
    prefetch = {key: {"resourceType": "Bundle", "type": "searchset"} for key in PREFETCH_TEMPLATES}
    prefetch["patient"] = {"resourceType": "Patient", "id": "p1"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps(hook_request(prefetch=prefetch))
    connection.request("POST", "/cds-services/vcf-patient-view", body=body,
                       headers={"Content-Type": "application/json", "traceparent":
                                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    response = connection.getresponse()
    assert response.status == 200 and json.loads(response.read()) == {"cards": []}
    huge = socket.create_connection(("127.0.0.1", port))
    huge.settimeout(5)
    huge.sendall(b"POST /cds-services/vcf-patient-view HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n")
    assert huge.recv(64).startswith(b"HTTP/1.1 413")  # refused before a byte of the body is read
    huge.close()


def test_no_control_socket_is_created(served):
    _, home = served
    assert not list(home.rglob("gunicorn.ctl")) and not (home / ".gunicorn").exists()
