"""`fhir_vcf.server.serve`: configuration errors stop start-up with one line; gunicorn options."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.fernet import Fernet

from fhir_vcf import server


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"FHIR_VCF_POLICY": "no-such-policy"}, "unknown policy 'no-such-policy'"),
        ({"FHIR_VCF_MAX_BODY_BYTES": "lots"}, "FHIR_VCF_MAX_BODY_BYTES: expected a whole number"),
        ({"FHIR_VCF_ALLOWED_FHIR_SERVERS": "ftp://x"}, "is not an http(s) URL"),
    ],
)
def test_config_error_prints_one_line_and_exits_non_zero(monkeypatch, env, expected):
    monkeypatch.setenv("FHIR_VCF_DATABASE_URL", "sqlite://")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    ran = []
    monkeypatch.setattr(server.FhirVcfApplication, "run", lambda self: ran.append(self))
    err = io.StringIO()
    assert server.serve("127.0.0.1", 8080, 1, False, err=err) == 2
    text = err.getvalue()
    assert text.count("\n") == 1 and expected in text and "Traceback" not in text
    assert ran == []


@pytest.mark.parametrize(("host", "port", "workers"), [("127.0.0.1", 0, 1), ("127.0.0.1", 70000, 1),
                                                       ("bad host", 8080, 1), ("127.0.0.1", 8080, 0)])
def test_bad_arguments_are_refused(monkeypatch, host, port, workers):
    monkeypatch.setattr(server.FhirVcfApplication, "run", lambda self: pytest.fail("must not start"))
    err = io.StringIO()
    assert server.serve(host, port, workers, False, err=err) == 2
    assert err.getvalue().count("\n") == 1


def test_serve_configures_gunicorn(monkeypatch):
    monkeypatch.setenv("FHIR_VCF_DATABASE_URL", "sqlite://")
    monkeypatch.delenv("FHIR_VCF_JTI_CACHE", raising=False)
    started = []
    monkeypatch.setattr(server.FhirVcfApplication, "run", lambda self: started.append(self))
    assert server.serve("0.0.0.0", 9090, 3, True) == 0
    (application,) = started
    assert application.cfg.bind == ["0.0.0.0:9090"]
    assert application.cfg.workers == 3
    assert application.cfg.preload_app is False
    keys = application.overrides.pop("evaluation_keys")  # demo: one page key for the run, every worker shares it
    assert len(keys) == 1 and Fernet(keys[0].encode())  # a real Fernet key, made in the master
    assert application.overrides == {"demo": True, "jti_cache": "database"}  # 3 workers share the jti cache
    app = application.load()
    assert app.extensions["fhir_vcf"].settings.demo is True
    assert app.extensions["fhir_vcf"].settings.jti_cache == "database"


@pytest.mark.parametrize(
    ("workers", "env", "expected"),
    [(1, None, None), (2, None, "database"), (4, "memory", "memory"), (1, "database", "database")],
)
def test_jti_cache_shared_when_several_workers(monkeypatch, tmp_path, caplog, workers, env, expected):
    from trust_support import ISSUER, ec_key, issuers_file, jwks

    monkeypatch.setenv("FHIR_VCF_DATABASE_URL", "sqlite://")
    monkeypatch.setenv("FHIR_VCF_TRUSTED_ISSUERS", issuers_file(tmp_path, {ISSUER: {"jwks": jwks(ec_key())}}))
    monkeypatch.setenv("FHIR_VCF_PUBLIC_BASE_URL", "https://cds.example.org")  # the JWT aud (issue 10)
    if env:
        monkeypatch.setenv("FHIR_VCF_JTI_CACHE", env)
    else:
        monkeypatch.delenv("FHIR_VCF_JTI_CACHE", raising=False)
    started = []
    monkeypatch.setattr(server.FhirVcfApplication, "run", lambda self: started.append(self))
    caplog.set_level(logging.INFO, logger="fhir_vcf.server")
    assert server.serve("127.0.0.1", 9090, workers, False) == 0
    (application,) = started
    worker_settings = application.load().extensions["fhir_vcf"].settings
    assert (worker_settings.jti_cache or None) == expected
    said = " ".join(r.getMessage() for r in caplog.records if r.name == "fhir_vcf.server")
    if env == "memory":
        assert "replayed to another worker is not caught" in said
    else:
        assert f"jti replay cache: {expected or 'memory'}" in said


def test_bad_jti_cache_setting_is_one_line(monkeypatch):
    monkeypatch.setenv("FHIR_VCF_DATABASE_URL", "sqlite://")
    monkeypatch.setenv("FHIR_VCF_JTI_CACHE", "shared")
    monkeypatch.setattr(server.FhirVcfApplication, "run", lambda self: pytest.fail("must not start"))
    err = io.StringIO()
    assert server.serve("127.0.0.1", 8080, 2, False, err=err) == 2
    assert err.getvalue().count("\n") == 1 and "FHIR_VCF_JTI_CACHE: expected memory or database" in err.getvalue()


def test_demo_banner_printed_with_the_urls(monkeypatch):
    monkeypatch.setenv("FHIR_VCF_DATABASE_URL", "sqlite://")
    monkeypatch.delenv("FHIR_VCF_FHIR_BASE_URL", raising=False)
    started = []
    monkeypatch.setattr(server.FhirVcfApplication, "run", lambda self: started.append(self))
    err = io.StringIO()
    assert server.serve("0.0.0.0", 8097, 1, True, err=err) == 0
    assert err.getvalue() == "", "the banner waits until the workers answer"
    started[0].cfg.post_worker_init(None)
    banner = err.getvalue()
    assert "http://127.0.0.1:8097/demo/fhir" in banner and "curl -s http://127.0.0.1:8097/healthz" in banner
    assert started[0].cfg.raw_env == ["FHIR_VCF_FHIR_BASE_URL=http://127.0.0.1:8097/demo/fhir"]


def test_the_banner_waits_for_the_last_of_the_first_workers(monkeypatch):
    """Printed once, after every worker has booted (their start-up lines above it), never again
    when gunicorn replaces a worker."""
    monkeypatch.setenv("FHIR_VCF_DATABASE_URL", "sqlite://")
    monkeypatch.delenv("FHIR_VCF_FHIR_BASE_URL", raising=False)
    started = []
    monkeypatch.setattr(server.FhirVcfApplication, "run", lambda self: started.append(self))
    err = io.StringIO()
    assert server.serve("127.0.0.1", 8098, 3, True, err=err) == 0
    hook = started[0].cfg.post_worker_init
    hook(None)
    hook(None)
    assert err.getvalue() == ""
    hook(None)
    assert err.getvalue().count("fhir-vcf 0.1.0 demo") == 1
    hook(None)  # a replacement worker
    assert err.getvalue().count("fhir-vcf 0.1.0 demo") == 1


def test_a_port_in_use_is_one_clear_line(monkeypatch):
    import socket

    monkeypatch.setenv("FHIR_VCF_DATABASE_URL", "sqlite://")
    monkeypatch.setattr(server.FhirVcfApplication, "run", lambda self: pytest.fail("gunicorn must not start"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = io.StringIO()
        assert server.serve("127.0.0.1", port, 1, False, err=err) == 2
    assert err.getvalue() == f"fhir-vcf serve: cannot listen on 127.0.0.1:{port}: Address already in use " \
        "(choose another --port)\n"


# --- prometheus_client's multiprocess mode ---------------------------------------------------------------

# A fresh interpreter, as `fhir-vcf serve` starts: the CLI parser and the server module are loaded
# (prometheus_client must not be), then serve() runs with gunicorn's run() replaced by a probe.
SERVE_PROBE = textwrap.dedent(
    """
    import json, os, sys
    from fhir_vcf import cli, server

    cli.build_parser()
    imported_early = "prometheus_client" in sys.modules
    seen = {}

    def probe(application):
        import prometheus_client.values as values
        folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        seen.update(folder=folder, exists=bool(folder) and os.path.isdir(folder),
                    value_class=values.ValueClass.__name__, child_exit=application.cfg.child_exit.__name__ if
                    application.cfg.child_exit else None)

    server.FhirVcfApplication.run = probe
    status = server.serve("127.0.0.1", 9090, 2, False)
    seen.update(status=status, imported_early=imported_early,
                after=os.environ.get("PROMETHEUS_MULTIPROC_DIR"),
                left=bool(seen.get("folder")) and os.path.exists(seen["folder"]))
    print(json.dumps(seen))
    """
)


def probe_serve(extra_env=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_VCF_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update({"FHIR_VCF_DATABASE_URL": "sqlite://", **(extra_env or {})})
    done = subprocess.run([sys.executable, "-c", SERVE_PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_serve_turns_on_multiprocess_metrics_before_prometheus_client_loads():
    seen = probe_serve()
    assert seen["imported_early"] is False  # the CLI and server modules do not import prometheus_client
    assert seen["status"] == 0
    assert seen["folder"] and seen["exists"]
    assert seen["value_class"] == "MmapedValue"  # the multiprocess value class, chosen at import
    assert seen["child_exit"] == "_child_exit"
    assert seen["after"] is None and seen["left"] is False  # the master cleans up its own folder


def test_serve_uses_and_wipes_an_operator_multiproc_dir(tmp_path):
    (tmp_path / "counter_12345.db").write_bytes(b"stale")
    (tmp_path / "keep.txt").write_text("not ours")
    seen = probe_serve({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    assert seen["folder"] == str(tmp_path) and seen["value_class"] == "MmapedValue"
    assert not (tmp_path / "counter_12345.db").exists()  # a previous run's values are not summed in
    assert (tmp_path / "keep.txt").exists() and tmp_path.is_dir()  # the folder is the operator's


def test_multiprocess_metrics_leaves_a_worker_exit_alone(monkeypatch):
    """gunicorn workers leave serve() by SystemExit in the forked child: that must not delete the
    folder the other workers and the master still use."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setattr(server, "_prometheus_imported", lambda: False)
    real_getpid = os.getpid
    with pytest.raises(SystemExit), server.multiprocess_metrics() as folder:
        monkeypatch.setattr(os, "getpid", lambda: real_getpid() + 1)  # now "in a forked worker"
        raise SystemExit(0)
    monkeypatch.setattr(os, "getpid", real_getpid)
    try:
        assert folder and Path(folder).is_dir()
        assert os.environ.get("PROMETHEUS_MULTIPROC_DIR") == folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # and the master (same pid) removes it
    with server.multiprocess_metrics() as folder:
        assert Path(folder).is_dir()
    assert not Path(folder).exists() and "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_child_exit_marks_the_worker_dead(monkeypatch, tmp_path):
    from prometheus_client import multiprocess

    dead = []
    monkeypatch.setattr(multiprocess, "mark_process_dead", lambda pid: dead.append(pid))
    server._child_exit(None, SimpleNamespace(pid=4242))
    assert dead == [4242]



def test_the_banner_hook_runs_an_existing_worker_hook_first():
    ran = []
    err = io.StringIO()
    hook = server._banner_when_all_workers_are_up("BANNER\n", 1, err, then=lambda worker: ran.append(worker))
    hook("worker-1")
    assert ran == ["worker-1"] and err.getvalue() == "BANNER\n"
