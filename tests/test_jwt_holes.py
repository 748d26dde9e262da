"""Issue 10's JWT holes and issue 13.5, on the real app with the real CDS Hooks views.

Each test names the attack: a key/alg mismatch (500 before), `exp` as a string or a year ahead
(accepted before), `aud` taken from a forged Host header, and a trailing-slash redirect that used up
the token's `jti` before the real handler ran.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import jwt
import pytest
from cards import hook_request
from trust_support import ISSUER, Key, bearer, claims, ec_key, issuers_file, jwks, mint, rsa_key

from fhir_vcf.app import create_app
from fhir_vcf.config import Settings
from fhir_vcf.errors import ConfigError
from fhir_vcf.sources.prefetch import PREFETCH_TEMPLATES

PUBLIC = "https://cds.example.org"
PATH = "/cds-services/vcf-patient-view"
AUD = PUBLIC + PATH


@pytest.fixture(scope="module")
def ec() -> Key:
    return ec_key("ec-1")


@pytest.fixture(scope="module")
def rs() -> Key:
    return rsa_key("rsa-1")


def make_client(tmp_path: Path, *keys: Key, **overrides):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'jwt.db'}",
                        trusted_issuers=issuers_file(tmp_path, {ISSUER: {"jwks": jwks(*keys)}}),
                        **{"public_base_url": PUBLIC, **overrides})
    return create_app(settings).test_client()


def body():
    prefetch = {key: {"resourceType": "Bundle", "type": "searchset"} for key in PREFETCH_TEMPLATES}
    prefetch["patient"] = {"resourceType": "Patient", "id": "p1"}
    return hook_request(prefetch=prefetch)


def signed(key: Key, claim_set: dict, *, alg: str | None = None, kid: str | None = None, signer=None) -> str:
    return jwt.encode(claim_set, signer or key.private, algorithm=alg or key.alg,
                      headers={"kid": kid or key.kid, "typ": "JWT"})


def assert_401(response) -> None:
    assert response.status_code == 401 and response.data == b"", response.get_data(as_text=True)


def test_a_valid_token_is_accepted(tmp_path, ec):
    client = make_client(tmp_path, ec)
    assert client.post(PATH, json=body(), headers=bearer(mint(ec, AUD))).status_code == 200


def test_an_es384_token_whose_kid_names_an_rsa_key_is_a_401_not_a_500(tmp_path, ec, rs):
    client = make_client(tmp_path, rs)
    token = signed(ec, claims(AUD), alg="ES384", kid=rs.kid)  # signed with the EC key, kid of the RSA key
    assert_401(client.post(PATH, json=body(), headers=bearer(token)))


def test_an_rs384_token_whose_kid_names_an_ec_key_is_a_401(tmp_path, ec, rs):
    client = make_client(tmp_path, ec)
    assert_401(client.post(PATH, json=body(), headers=bearer(signed(rs, claims(AUD), kid=ec.kid))))


def test_a_key_of_the_wrong_curve_is_a_401(tmp_path, ec):
    from cryptography.hazmat.primitives.asymmetric import ec as curves

    p256 = Key("p256", "ES256", curves.generate_private_key(curves.SECP256R1()))
    client = make_client(tmp_path, p256)
    token = signed(ec, claims(AUD), alg="ES384", kid="p256")
    assert_401(client.post(PATH, json=body(), headers=bearer(token)))


@pytest.mark.parametrize("claim", ["exp", "iat"])
def test_exp_or_iat_as_a_string_is_a_401(tmp_path, ec, claim):
    claim_set = claims(AUD)
    claim_set[claim] = str(claim_set[claim])
    client = make_client(tmp_path, ec)
    assert_401(client.post(PATH, json=body(), headers=bearer(signed(ec, claim_set))))


def test_exp_a_year_ahead_is_a_401_and_five_minutes_is_fine(tmp_path, ec):
    client = make_client(tmp_path, ec)
    assert_401(client.post(PATH, json=body(), headers=bearer(mint(ec, AUD, exp_in=365 * 86400))))
    assert_401(client.post(PATH, json=body(), headers=bearer(mint(ec, AUD, exp_in=600))))
    assert client.post(PATH, json=body(), headers=bearer(mint(ec, AUD, exp_in=300))).status_code == 200


def test_trusted_issuers_without_an_audience_source_do_not_start(tmp_path, ec):
    """Without FHIR_VCF_PUBLIC_BASE_URL, aud was checked against the Host header: forgeable."""
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL"):
        make_client(tmp_path, ec, public_base_url=None)


def test_a_token_minted_for_another_service_is_refused_whatever_the_host(tmp_path, ec):
    client = make_client(tmp_path, ec)
    other = "https://other-service.example.net" + PATH
    assert_401(client.post(PATH, json=body(), headers={**bearer(mint(ec, other)),
                                                       "Host": "other-service.example.net"}))


def test_the_host_header_is_used_only_when_trusted(tmp_path, ec):
    client = make_client(tmp_path, ec, public_base_url=None, trust_host_header=True)
    token = mint(ec, "http://proxy-set-host.example" + PATH)
    response = client.post(PATH, json=body(), headers={**bearer(token), "Host": "proxy-set-host.example"})
    assert response.status_code == 200


def test_a_trailing_slash_redirect_does_not_use_up_the_jti(tmp_path, ec):
    """Issue 13.5: the 308 to the URL without the slash must leave the token usable there."""
    client = make_client(tmp_path, ec)
    jti = str(uuid.uuid4())
    token = mint(ec, AUD, jti=jti)
    redirected = client.post(PATH + "/", json=body(), headers=bearer(token))
    assert redirected.status_code in (308, 404)  # Werkzeug's strict slashes: no view runs
    assert client.post(PATH, json=body(), headers=bearer(token)).status_code == 200
    assert_401(client.post(PATH, json=body(), headers=bearer(token)))  # and then it is used


def test_discovery_with_and_without_a_trailing_slash(tmp_path, ec):
    client = make_client(tmp_path, ec)
    for path in ("/cds-services", "/cds-services/"):
        response = client.get(path, headers=bearer(mint(ec, PUBLIC + path)))
        assert response.status_code == 200 and response.json["services"], path


def test_an_unknown_route_does_not_use_up_the_jti(tmp_path, ec):
    client = make_client(tmp_path, ec)
    token = mint(ec, AUD)
    assert client.get(PATH, headers=bearer(token)).status_code == 405
    assert client.post(PATH, json=body(), headers=bearer(token)).status_code == 200


def test_a_token_with_a_huge_or_odd_jti_is_handled(tmp_path, ec):
    client = make_client(tmp_path, ec)
    assert client.post(PATH, json=body(), headers=bearer(mint(ec, AUD, jti="j" * 5000))).status_code == 200
    claim_set = claims(AUD)
    token = jwt.encode(claim_set, ec.private, algorithm=ec.alg, headers={"kid": ec.kid, "typ": "JWT"})
    header, payload, signature = token.split(".")
    assert client.post(PATH, json=body(), headers=bearer(f"{header}.{payload}.{signature}")).status_code == 200
    assert_401(client.post(PATH, json=body(), headers=bearer(f"{header}.{payload}x.{signature}")))


def test_pyjwt_private_attributes_are_not_used():
    """Issue 13.14: no `_jwk_data`, `_last_successful_fetch` or other private PyJWT attribute."""
    source = (Path(__file__).resolve().parent.parent / "fhir_vcf" / "service" / "auth.py").read_text()
    for private in ("_jwk_data", "_last_successful_fetch", "_client_lock", "_as_jwk_set_payload"):
        assert private not in source


def test_the_spec_lifetime_limit_is_five_minutes():
    from fhir_vcf.service.auth import MAX_TOKEN_LIFETIME_SECONDS

    assert MAX_TOKEN_LIFETIME_SECONDS == 300
    assert json.dumps(claims("x", exp_in=1))  # the helper still makes numeric claims
    assert isinstance(claims("x")["exp"], int) and claims("x")["exp"] <= time.time() + 300
