"""`fhir_vcf.server.serve`: configuration errors stop start-up with one line; gunicorn options."""

from __future__ import annotations

import io

import pytest

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
    started = []
    monkeypatch.setattr(server.FhirVcfApplication, "run", lambda self: started.append(self))
    assert server.serve("0.0.0.0", 9090, 3, True) == 0
    (application,) = started
    assert application.cfg.bind == ["0.0.0.0:9090"]
    assert application.cfg.workers == 3
    assert application.cfg.preload_app is False
    assert application.overrides == {"demo": True}
    app = application.load()
    assert app.extensions["fhir_vcf"].settings.demo is True

