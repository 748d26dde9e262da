"""JWT trust (CDS Hooks 2.0 "Trusting CDS Clients") and CORS, on a minimal app with stub views.

Keys are generated per test run (EC P-384 and RSA 2048); JWKS URLs are mocked with `responses`.
The CDS Hooks 2.0 specification's own example token is a fixed vector.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
import responses
from flask import Blueprint, Flask, g
from trust_support import BASE, ISSUER, Key, bearer, claims, ec_key, issuers_file, jwks, mint, rsa_key

from fhir_vcf.config import Settings
from fhir_vcf.errors import ConfigError
from fhir_vcf.service import auth
from fhir_vcf.service.auth import AuthError, ReplayCache, Trust, load_issuers

SERVICE = "/cds-services/vcf-patient-view"
AUD = BASE + SERVICE
JWKS_URL = "https://ehr.example.org/.well-known/jwks.json"


@pytest.fixture(scope="module")
def ec() -> Key:
    return ec_key("ec-1")


@pytest.fixture(scope="module")
def rs() -> Key:
    return rsa_key("rsa-1")


def make_app(tmp_path: Path, issuers: dict[str, Any] | None, **overrides: Any) -> Flask:
    """Stub CDS Hooks views under /cds-services, wired exactly as create_app wires auth."""
    overrides.setdefault("trust_host_header", True)  # aud from the test client's Host, as before issue 10
    settings = Settings(
        trusted_issuers=issuers_file(tmp_path, issuers) if issuers else None, **overrides
    ).validated()
    app = Flask(__name__)
    app.testing = True
    app.extensions["fhir_vcf"] = SimpleNamespace(settings=settings)
    cds = Blueprint("cds_hooks", __name__, url_prefix="/cds-services")

    @cds.get("")
    def discovery() -> dict[str, Any]:
        return {"services": [], "caller": (g.jwt_claims or {}).get("iss")}

    @cds.post("/<service_id>")
    def call(service_id: str) -> dict[str, Any]:
        return {"cards": [], "tenant": (g.jwt_claims or {}).get("tenant")}

    api = Blueprint("api", __name__, url_prefix="/api/v1")

    @api.get("/policies")
    def policies() -> dict[str, Any]:
        return {"policies": []}

    app.register_blueprint(cds)
    app.register_blueprint(api)
    auth.init_app(app, settings)
    auth.init_cors(app, settings)
    return app


@pytest.fixture
def app(tmp_path: Path, ec: Key, rs: Key) -> Flask:
    return make_app(tmp_path, {ISSUER: {"jwks": jwks(ec, rs)}})


def post(app: Flask, token: str | None, path: str = SERVICE):
    headers = bearer(token) if token is not None else {}
    return app.test_client().post(path, json={}, headers=headers)


def assert_bare_401(response) -> None:
    assert response.status_code == 401
    assert response.data == b""
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# --- accepted -------------------------------------------------------------------------------------


def test_es384_token_accepted_and_claims_exposed(app: Flask, ec: Key) -> None:
    response = post(app, mint(ec, AUD, tenant="org-1"))
    assert response.status_code == 200
    assert response.get_json()["tenant"] == "org-1"


def test_rs384_token_accepted(app: Flask, rs: Key) -> None:
    assert post(app, mint(rs, AUD)).status_code == 200


def test_discovery_needs_token_with_its_own_url(app: Flask, ec: Key) -> None:
    client = app.test_client()
    assert_bare_401(client.get("/cds-services"))
    ok = client.get("/cds-services", headers=bearer(mint(ec, BASE + "/cds-services")))
    assert ok.status_code == 200
    assert ok.get_json()["caller"] == ISSUER


def test_aud_as_array_and_trailing_slash_accepted(app: Flask, ec: Key) -> None:
    assert post(app, mint(ec, ["https://other.example/x", AUD])).status_code == 200
    assert post(app, mint(ec, AUD + "/")).status_code == 200


def test_issuer_trailing_slash_is_the_same_issuer(app: Flask, ec: Key) -> None:
    assert post(app, mint(ec, AUD, iss=ISSUER.rstrip("/"))).status_code == 200


def test_paths_outside_cds_services_need_no_token(app: Flask) -> None:
    assert app.test_client().get("/api/v1/policies").status_code == 200


# --- refused --------------------------------------------------------------------------------------


def test_missing_or_non_bearer_authorization_refused(app: Flask, ec: Key) -> None:
    client = app.test_client()
    assert_bare_401(client.post(SERVICE, json={}))
    assert_bare_401(client.post(SERVICE, json={}, headers={"Authorization": "Basic dXNlcjpwYXNz"}))
    assert_bare_401(client.post(SERVICE, json={}, headers={"Authorization": "Bearer "}))
    assert_bare_401(client.post(SERVICE, json={}, headers=bearer("not-a-jwt")))


def test_hs256_refused_before_verification(app: Flask, ec: Key) -> None:
    token = jwt.encode(claims(AUD), "shared-secret-of-32-bytes-at-least!!", algorithm="HS256",
                       headers={"kid": ec.kid})
    assert_bare_401(post(app, token))


def test_alg_none_refused(app: Flask, ec: Key) -> None:
    token = jwt.encode(claims(AUD), None, algorithm="none", headers={"kid": ec.kid})
    assert_bare_401(post(app, token))


def test_wrong_key_refused(app: Flask) -> None:
    impostor = ec_key("ec-1")  # same kid, another private key
    assert_bare_401(post(app, mint(impostor, AUD)))


def test_alg_not_matching_the_jwk_alg_refused(tmp_path: Path) -> None:
    # An RSA key published for RS384 must not verify an RS256 token.
    key = rsa_key("rsa-2")
    app = make_app(tmp_path, {ISSUER: {"jwks": jwks(key)}})
    token = jwt.encode(claims(AUD), key.private, algorithm="RS256", headers={"kid": key.kid, "typ": "JWT"})
    assert_bare_401(post(app, token))


def test_expired_refused(app: Flask, ec: Key) -> None:
    assert_bare_401(post(app, mint(ec, AUD, exp_in=-120, iat_in=-400)))


def test_future_iat_refused(app: Flask, ec: Key) -> None:
    assert_bare_401(post(app, mint(ec, AUD, iat_in=3600, exp_in=7200)))


def test_small_clock_skew_tolerated(app: Flask, ec: Key) -> None:
    assert post(app, mint(ec, AUD, iat_in=10)).status_code == 200  # leeway 30 s


@pytest.mark.parametrize("claim", ["jti", "exp", "iat", "aud"])
def test_missing_required_claim_refused(app: Flask, ec: Key, claim: str) -> None:
    assert_bare_401(post(app, mint(ec, AUD, drop=(claim,))))


def test_replayed_jti_refused(app: Flask, ec: Key) -> None:
    token = mint(ec, AUD, jti="once-only")
    assert post(app, token).status_code == 200
    assert_bare_401(post(app, token))
    # the same jti in a freshly signed token is still a replay
    assert_bare_401(post(app, mint(ec, AUD, jti="once-only")))


def test_wrong_aud_refused(app: Flask, ec: Key) -> None:
    assert_bare_401(post(app, mint(ec, BASE + "/cds-services/vcf-order-sign")))  # another service
    assert_bare_401(post(app, mint(ec, BASE + "/cds-services")))  # discovery's token on a service
    assert_bare_401(post(app, mint(ec, "https://evil.example" + SERVICE)))  # another host


def test_unknown_issuer_refused(app: Flask, ec: Key) -> None:
    assert_bare_401(post(app, mint(ec, AUD, iss="https://rogue-ehr.example.com/")))


def test_typ_other_than_jwt_refused(app: Flask, ec: Key) -> None:
    assert_bare_401(post(app, mint(ec, AUD, headers={"typ": "at+jwt"})))


def test_refusal_logged_with_reason_never_the_token(app: Flask, ec: Key, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fhir_vcf.service.auth")
    token = mint(ec, AUD, exp_in=-120, iat_in=-400)
    assert_bare_401(post(app, token))
    assert "ExpiredSignatureError" in caplog.text
    for part in token.split("."):
        assert part not in caplog.text


def test_public_base_url_sets_the_audience(tmp_path: Path, ec: Key) -> None:
    app = make_app(tmp_path, {ISSUER: {"jwks": jwks(ec)}}, public_base_url="https://cds.example.org/")
    assert post(app, mint(ec, "https://cds.example.org" + SERVICE)).status_code == 200
    assert_bare_401(post(app, mint(ec, AUD)))  # the URL this process sees is not the one called


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda e, r: jwt.encode(claims(AUD), "k" * 32, algorithm="HS256", headers={"kid": e.kid}),
         "'HS256' not allowed"),
        (lambda e, r: jwt.encode(claims(AUD), None, algorithm="none", headers={"kid": e.kid}), "'none' not allowed"),
        (lambda e, r: mint(ec_key(e.kid), AUD), "InvalidSignatureError"),
        (lambda e, r: mint(e, AUD, exp_in=-100, iat_in=-200), "ExpiredSignatureError"),
        (lambda e, r: mint(e, AUD, iat_in=3600, exp_in=7200), "iat"),
        (lambda e, r: mint(e, AUD, drop=("jti",)), '"jti"'),
        (lambda e, r: mint(e, AUD + "/other"), "aud does not match"),
        (lambda e, r: mint(e, AUD, iss="https://rogue.example"), "untrusted"),
        (lambda e, r: mint(e, AUD, headers={"kid": "unknown"}), "no key with this kid"),
        (lambda e, r: jwt.encode(claims(AUD), r.private, algorithm="RS256", headers={"kid": r.kid}),
         "alg does not match"),
    ],
    ids=["hs256", "none", "wrong-key", "expired", "future-iat", "no-jti", "wrong-aud", "unknown-iss", "unknown-kid",
         "alg-vs-jwk"],
)
def test_refusal_reasons(tmp_path: Path, ec: Key, rs: Key, make: Any, reason: str) -> None:
    """Each refusal above fails for its own reason (not for some other check)."""
    trust = Trust.from_file(issuers_file(tmp_path, {ISSUER: {"jwks": jwks(ec, rs)}}))
    with pytest.raises(AuthError) as refused:
        trust.verify(make(ec, rs), AUD)
    assert reason in refused.value.reason


def test_require_jwt_decorator_protects_other_views(tmp_path: Path, ec: Key) -> None:
    app = make_app(tmp_path, {ISSUER: {"jwks": jwks(ec)}})

    @app.post("/elsewhere")
    @auth.require_jwt
    def elsewhere() -> dict[str, Any]:
        return {"iss": g.jwt_claims["iss"]}

    client = app.test_client()
    assert_bare_401(client.post("/elsewhere"))
    assert client.post("/elsewhere", headers=bearer(mint(ec, BASE + "/elsewhere"))).get_json() == {"iss": ISSUER}


# --- JWKS URLs, jku ---------------------------------------------------------------------------------


@responses.activate
def test_jku_on_allowlist_used_and_jku_off_allowlist_refused(tmp_path: Path, ec: Key) -> None:
    allowed = "https://ehr.example.org/jwks/current"
    responses.get(allowed, json=jwks(ec))
    app = make_app(tmp_path, {ISSUER: {"jwks_url": JWKS_URL, "jku": [allowed]}})
    assert post(app, mint(ec, AUD, headers={"jku": allowed})).status_code == 200
    assert_bare_401(post(app, mint(ec, AUD, headers={"jku": "https://attacker.example/jwks.json"})))
    assert [call.request.url for call in responses.calls] == [allowed]  # the attacker URL never fetched


def test_jku_refused_when_issuer_has_no_jku_allowlist(tmp_path: Path, ec: Key) -> None:
    app = make_app(tmp_path, {ISSUER: {"jwks_url": JWKS_URL}})  # no inline key to fall back on
    assert_bare_401(post(app, mint(ec, AUD, headers={"jku": JWKS_URL})))


@responses.activate
def test_inline_keys_are_used_when_the_token_carries_a_jku(tmp_path: Path, ec: Key) -> None:
    """Issue 13.2: an offline deployment trusts a client that sends `jku` through its inline keys
    (kid matched first); a jku off the allowlist is never fetched, and a kid it lacks is refused."""
    app = make_app(tmp_path, {ISSUER: {"jwks": jwks(ec)}})
    assert post(app, mint(ec, AUD, headers={"jku": "https://ehr.example.org/jwks.json"})).status_code == 200
    assert_bare_401(post(app, mint(ec_key("not-inline"), AUD, headers={"jku": "https://ehr.example.org/jwks.json"})))
    assert len(responses.calls) == 0


@responses.activate
def test_allowed_jku_is_fetched_only_when_no_inline_key_matches(tmp_path: Path, ec: Key) -> None:
    inline, remote = ec_key("inline-1"), ec_key("remote-1")
    allowed = "https://ehr.example.org/jwks/current"
    endpoint = responses.get(allowed, json=jwks(remote))
    app = make_app(tmp_path, {ISSUER: {"jwks": jwks(inline), "jku": [allowed]}})
    assert post(app, mint(inline, AUD, headers={"jku": allowed})).status_code == 200
    assert endpoint.call_count == 0
    assert post(app, mint(remote, AUD, headers={"jku": allowed})).status_code == 200
    assert endpoint.call_count == 1


@responses.activate
def test_jwks_url_cached_and_refreshed_on_unknown_kid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "JWKS_REFRESH_COOLDOWN_SECONDS", 0.0)
    old, new = ec_key("2024-key"), ec_key("2025-key")
    endpoint = responses.get(JWKS_URL, json=jwks(old))
    app = make_app(tmp_path, {ISSUER: {"jwks_url": JWKS_URL}})

    assert post(app, mint(old, AUD)).status_code == 200
    assert post(app, mint(old, AUD)).status_code == 200
    assert endpoint.call_count == 1  # cached

    responses.replace(responses.GET, JWKS_URL, json=jwks(new))  # the EHR rotates its key
    assert post(app, mint(new, AUD)).status_code == 200  # unknown kid: refetched once
    assert len(responses.calls) == 2
    assert post(app, mint(new, AUD)).status_code == 200
    assert len(responses.calls) == 2


@responses.activate
def test_unknown_kid_refetch_has_a_cooldown(tmp_path: Path, ec: Key, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "JWKS_REFRESH_COOLDOWN_SECONDS", 60.0)
    responses.get(JWKS_URL, json=jwks(ec))
    app = make_app(tmp_path, {ISSUER: {"jwks_url": JWKS_URL}})
    assert post(app, mint(ec, AUD)).status_code == 200
    for i in range(3):  # random kids cannot make us hammer the EHR's JWKS endpoint
        assert_bare_401(post(app, mint(ec_key(f"random-{i}"), AUD)))
    assert len(responses.calls) == 1


@responses.activate
def test_jwks_endpoint_down_refuses(tmp_path: Path, ec: Key) -> None:
    responses.get(JWKS_URL, status=503)
    app = make_app(tmp_path, {ISSUER: {"jwks_url": JWKS_URL}})
    assert_bare_401(post(app, mint(ec, AUD)))


# --- trust off, configuration ------------------------------------------------------------------------


def test_trust_unset_lets_calls_through_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="fhir_vcf.service.auth")
    app = make_app(tmp_path, None)
    assert any("NOT authenticated" in r.getMessage() for r in caplog.records)
    assert app.test_client().post(SERVICE, json={}).status_code == 200


def test_issuer_file_rejects_symmetric_keys_and_bad_jku(tmp_path: Path) -> None:
    oct_key = {"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]}
    with pytest.raises(ConfigError, match="symmetric"):
        load_issuers(issuers_file(tmp_path, {ISSUER: {"jwks": oct_key}}))
    with pytest.raises(ConfigError, match="jku"):
        load_issuers(issuers_file(tmp_path, {ISSUER: {"jwks_url": JWKS_URL, "jku": JWKS_URL}}))
    with pytest.raises(ConfigError, match="http"):
        load_issuers(issuers_file(tmp_path, {ISSUER: {"jwks_url": "file:///etc/passwd"}}))


def test_replay_cache_forgets_expired_entries_and_is_bounded() -> None:
    cache = ReplayCache(max_entries=2)
    now = time.time()
    assert cache.add("iss", "a", now + 10, now)
    assert not cache.add("iss", "a", now + 10, now)
    assert cache.add("other-iss", "a", now + 10, now)  # keyed by issuer and jti
    with pytest.raises(AuthError, match="full"):
        cache.add("iss", "b", now + 10, now)  # full of live entries: fail closed
    assert cache.add("iss", "b", now + 30, now + 11)  # the first two expired meanwhile
    assert cache.add("iss", "a", now + 30, now + 11)  # an expired jti is forgotten
    assert len(cache) == 2


# --- CORS -----------------------------------------------------------------------------------------------


def test_cors_preflight_needs_no_token_and_only_for_configured_origins(tmp_path: Path, ec: Key) -> None:
    app = make_app(tmp_path, {ISSUER: {"jwks": jwks(ec)}}, cors_origins=("https://ehr-ui.example.org",))
    client = app.test_client()
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    ok = client.options(SERVICE, headers={"Origin": "https://ehr-ui.example.org", **preflight})
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == "https://ehr-ui.example.org"
    allowed = {h.strip().lower() for h in ok.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert "Access-Control-Allow-Credentials" not in ok.headers

    other = client.options(SERVICE, headers={"Origin": "https://evil.example", **preflight})
    assert "Access-Control-Allow-Origin" not in other.headers

    api = client.options("/api/v1/policies", headers={"Origin": "https://ehr-ui.example.org", **preflight})
    assert api.headers["Access-Control-Allow-Origin"] == "https://ehr-ui.example.org"
    elsewhere = client.get("/healthz", headers={"Origin": "https://ehr-ui.example.org"})
    assert "Access-Control-Allow-Origin" not in elsewhere.headers  # only the two API trees

    # the real call still needs the JWT; the 401 carries CORS headers so the browser can read it
    refused = client.post(SERVICE, json={}, headers={"Origin": "https://ehr-ui.example.org"})
    assert_bare_401(refused)
    assert refused.headers["Access-Control-Allow-Origin"] == "https://ehr-ui.example.org"


def test_cors_lets_a_browser_send_and_read_the_request_id(tmp_path: Path, ec: Key) -> None:
    """A browser EHR may send its own X-Request-ID (the logs use it) and read the one we echo."""
    from fhir_vcf import create_app

    origin = "https://ehr-ui.example.org"
    app = create_app({"database_url": "sqlite://", "cors_origins": (origin,),
                      "trusted_issuers": issuers_file(tmp_path, {ISSUER: {"jwks": jwks(ec)}}),
                      "trust_host_header": True})
    client = app.test_client()
    preflight = client.options(SERVICE, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, x-request-id"})
    assert preflight.status_code == 200
    allowed = {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "x-request-id"} <= allowed

    for response in (
        client.get("/cds-services", headers={"Origin": origin, "X-Request-ID": "ehr-req-42",
                                             **bearer(mint(ec, BASE + "/cds-services"))}),
        client.get("/api/v1/policies", headers={"Origin": origin, "X-Request-ID": "ehr-req-42"}),
        client.post(SERVICE, json={}, headers={"Origin": origin, "X-Request-ID": "ehr-req-42"}),  # 401
    ):
        assert response.headers["X-Request-ID"] == "ehr-req-42"
        assert response.headers["Access-Control-Allow-Origin"] == origin
        exposed = {h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
        assert "x-request-id" in exposed


@pytest.mark.parametrize("demo, says", [(False, "browsers on other origins cannot call the service"),
                                         (True, "demo mode: browsers on this machine may call")])
def test_the_cors_start_up_line_matches_what_the_mode_allows(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                             demo: bool, says: str) -> None:
    # serve --demo answers loopback browsers from any origin (demo_fhir.init_demo_cors): its log
    # must not say that browsers on other origins cannot call it.
    caplog.set_level(logging.INFO, logger="fhir_vcf.service.auth")
    make_app(tmp_path, None, demo=demo)
    cors = [r.getMessage() for r in caplog.records if r.getMessage().startswith("cors:")]
    assert len(cors) == 1 and says in cors[0]


def test_no_cors_headers_without_configured_origins(app: Flask) -> None:
    response = app.test_client().options(
        SERVICE, headers={"Origin": "https://ehr-ui.example.org", "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in response.headers


# --- the CDS Hooks 2.0 specification's example token --------------------------------------------------
# From https://cds-hooks.hl7.org/2.0/ "Trusting CDS Clients" > Example (also docs/specification/current.md
# of github.com/cds-hooks/docs): the header, payload, public JWK Set and the complete token, verbatim.

SPEC_TOKEN = (
    "eyJhbGciOiJFUzM4NCIsInR5cCI6IkpXVCIsImtpZCI6ImV4YW1wbGUta2lkIiwiamt1IjoiaHR0cHM6Ly9maGlyLWVoci5leGFtcGxl"
    "LmNvbS9qd2tfdXJpIn0.eyJpc3MiOiJodHRwczovL2ZoaXItZWhyLmV4YW1wbGUuY29tLyIsImF1ZCI6Imh0dHBzOi8vY2RzLmV4YW1w"
    "bGUub3JnL2Nkcy1zZXJ2aWNlcy9zb21lLXNlcnZpY2UiLCJleHAiOjE0MjI1Njg4NjAsImlhdCI6MTMxMTI4MDk3MCwianRpIjoiZWUy"
    "MmIwMjEtZTFiNy00NjExLWJhNWItOGVlYzZhMzNhYzFlIiwidGVuYW50IjoiMmRkZDZjM2EtOGU5YS00NGM2LWEzMDUtNTIxMTFhZDMw"
    "MmEyIn0.d1WfLjGRKlcWB94l9do4cM8REXeYJLL6SGUBO8VHZhfM8mwKYP70EMxJ67War4TQblEpaQrp11wx5p7oPFm2ETYgCicS84vX"
    "WEIYTdjooZdooCSDf2L8-i4awdoUwiEb"
)
SPEC_HEADER = {"alg": "ES384", "typ": "JWT", "kid": "example-kid", "jku": "https://fhir-ehr.example.com/jwk_uri"}
SPEC_CLAIMS = {
    "iss": "https://fhir-ehr.example.com/",
    "aud": "https://cds.example.org/cds-services/some-service",
    "exp": 1422568860,
    "iat": 1311280970,
    "jti": "ee22b021-e1b7-4611-ba5b-8eec6a33ac1e",
    "tenant": "2ddd6c3a-8e9a-44c6-a305-52111ad302a2",
}
SPEC_JWKS = {
    "keys": [
        {
            "kty": "EC",
            "use": "sig",
            "crv": "P-384",
            "kid": "example-kid",
            "x": "46SDH7Znh821wblCBglA61sNE9ZrHYKKt3qRtRTmSXyOI_FIGBLWrWa0GPUkDCEk",
            "y": "XMcRuuoGW7CXjQdy-F5i3FeBE0x9hPLdeFdSoDd3ELmx404tLX0VRRcqzAsPhXcI",
            "alg": "ES384",
        }
    ]
}
SPEC_ISSUER = SPEC_CLAIMS["iss"]
SPEC_AUD = SPEC_CLAIMS["aud"]


def spec_trust(tmp_path: Path, entry: dict[str, Any]) -> Trust:
    return Trust.from_file(issuers_file(tmp_path, {SPEC_ISSUER: entry}, "spec-issuers.json"))


def test_spec_example_decodes_as_the_spec_shows() -> None:
    assert jwt.get_unverified_header(SPEC_TOKEN) == SPEC_HEADER
    assert jwt.decode(SPEC_TOKEN, options={"verify_signature": False}) == SPEC_CLAIMS


def test_spec_example_signature_is_valid_for_the_spec_key() -> None:
    key = jwt.PyJWKSet.from_dict(SPEC_JWKS)["example-kid"]
    decoded = jwt.decode(SPEC_TOKEN, key.key, algorithms=["ES384"], options={"verify_exp": False, "verify_aud": False})
    assert decoded == SPEC_CLAIMS


def test_spec_example_refused_when_issuer_untrusted(tmp_path: Path, ec: Key) -> None:
    trust = Trust.from_file(issuers_file(tmp_path, {ISSUER: {"jwks": jwks(ec)}}))
    with pytest.raises(AuthError, match="untrusted"):
        trust.verify(SPEC_TOKEN, SPEC_AUD)


def test_spec_example_refused_when_jku_not_allowlisted(tmp_path: Path) -> None:
    with pytest.raises(AuthError, match="jku"):
        spec_trust(tmp_path, {"jwks_url": "https://ehr.example.org/keys"}).verify(SPEC_TOKEN, SPEC_AUD)


@responses.activate
def test_spec_example_with_inline_keys_is_checked_without_fetching_its_jku(tmp_path: Path) -> None:
    with pytest.raises(AuthError, match="ExpiredSignatureError"):  # the inline key verifies it; exp is 2015
        spec_trust(tmp_path, {"jwks": SPEC_JWKS}).verify(SPEC_TOKEN, SPEC_AUD)
    assert len(responses.calls) == 0


@responses.activate
def test_spec_example_refused_as_expired_even_when_fully_trusted(tmp_path: Path) -> None:
    responses.get(SPEC_HEADER["jku"], json=SPEC_JWKS)
    trust = spec_trust(tmp_path, {"jwks": SPEC_JWKS, "jku": [SPEC_HEADER["jku"]]})
    with pytest.raises(AuthError, match="ExpiredSignatureError"):
        trust.verify(SPEC_TOKEN, SPEC_AUD)  # signature fine (fetched via the allowlisted jku), exp 2015


def test_issuers_json_example_shape(tmp_path: Path, ec: Key) -> None:
    """The documented file shape: issuer -> jwks_url | jwks, optional jku list."""
    path = issuers_file(tmp_path, {
        ISSUER: {"jwks_url": JWKS_URL, "jku": ["https://ehr.example.org/jwks/current"]},
        "https://other-ehr.example.net": {"jwks": jwks(ec)},
    })
    issuers = load_issuers(path)
    assert set(issuers) == {ISSUER.rstrip("/"), "https://other-ehr.example.net"}
    assert json.loads(Path(path).read_text())[ISSUER]["jwks_url"] == JWKS_URL
