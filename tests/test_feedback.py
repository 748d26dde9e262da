"""POST /cds-services/{id}/feedback through the real app factory (store, JWT trust and CORS wired).

The spec's own three feedback examples (CDS Hooks 2.0, "Feedback") are the valid bodies.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from trust_support import BASE, ISSUER, Key, bearer, ec_key, issuers_file, jwks, mint

from fhir_vcf.app import create_app
from fhir_vcf.config import Settings
from fhir_vcf.store import IssuedCard, StoreError, StoreValueError, current_store

SERVICE = "vcf-patient-view"
URL = f"/cds-services/{SERVICE}/feedback"
ORIGIN = "https://ehr-ui.example.org"

ACCEPTED = {
    "card": "4e0a3a1e-3283-4575-ab82-028d55fe2719",
    "outcome": "accepted",
    "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
    "outcomeTimestamp": "2020-12-11T00:00:00Z",
}
OVERRIDDEN = {
    "card": "f6b95768-b1c8-40dc-8385-bf3504b82ffb",
    "outcome": "overridden",
    "outcomeTimestamp": "2020-12-11T00:00:00Z",
}
OVERRIDDEN_WITH_REASON = {
    "card": "9368d37b-283f-44a0-93ea-547cebab93ed",
    "outcome": "overridden",
    "overrideReason": {
        "reason": {"code": "d7ecf885", "system": "https://example.com/cds-hooks/override-reason-system"},
        "userComment": "clinician entered comment",
    },
    "outcomeTimestamp": "2020-12-11T00:00:00Z",
}


REASON_SYSTEM = "https://example.com/cds-hooks/override-reason-system"
# The cards the spec's examples refer to, as if this service had issued them (feedback about a card
# the service never issued is refused): what each offered.
ISSUED = [
    IssuedCard(ACCEPTED["card"], ("e56e1945-20b3-4393-8503-a1a20fd73152",), ()),
    IssuedCard(OVERRIDDEN["card"], (), (("urn:x", "c1"),)),
    IssuedCard(OVERRIDDEN_WITH_REASON["card"], (), ((REASON_SYSTEM, "d7ecf885"),)),
]


def issue(app: Flask, *cards: IssuedCard, service_id: str = SERVICE) -> None:
    """Audit a hook call of `service_id` that answered with `cards`."""
    with app.app_context():
        current_store().record_call(hook="patient-view", service_id=service_id, cards=cards)


def make_app(tmp_path: Path, **overrides: Any) -> Flask:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'var' / 'fb.db'}", **overrides))
    app.testing = True
    for service_id in ("vcf-patient-view", "vcf-order-select", "vcf-order-sign"):
        issue(app, *ISSUED, service_id=service_id)
    return app


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_app(tmp_path)


def send(app: Flask, body: Any, url: str = URL, **kwargs: Any):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return app.test_client().post(url, data=data, content_type="application/json", **kwargs)


def stored(app: Flask, card: str) -> list[dict[str, Any]]:
    with app.app_context():
        return current_store().feedback_for(card)


def expressions(response) -> list[str]:
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    return [e for issue in body["issue"] for e in issue.get("expression", [])]


# --- valid ------------------------------------------------------------------------------------------


def test_the_spec_examples_are_stored_and_answered_with_an_empty_object(app: Flask) -> None:
    response = send(app, {"feedback": [ACCEPTED, OVERRIDDEN, OVERRIDDEN_WITH_REASON]})
    assert response.status_code == 200
    assert response.get_json() == {}
    assert stored(app, ACCEPTED["card"])[0]["accepted_suggestions"] == ["e56e1945-20b3-4393-8503-a1a20fd73152"]
    assert stored(app, OVERRIDDEN["card"])[0]["override_code"] is None
    (row,) = stored(app, OVERRIDDEN_WITH_REASON["card"])
    assert row["override_code"] == "d7ecf885"
    assert row["user_comment_present"] is True
    assert row["service_id"] == SERVICE


def test_feedback_sent_twice_is_stored_once(app: Flask) -> None:
    assert send(app, {"feedback": [ACCEPTED]}).status_code == 200
    again = send(app, {"feedback": [ACCEPTED]})
    assert again.status_code == 200
    assert again.get_json() == {}
    assert len(stored(app, ACCEPTED["card"])) == 1


def test_feedback_joins_the_audited_call(app: Flask) -> None:
    card = "0b5c3c52-50b1-4b7a-9d6b-0d5c1f9b7a11"
    with app.app_context():
        audit_id = current_store().record_call(hook="patient-view", service_id=SERVICE, card_uuids=[card])
    send(app, {"feedback": [{**OVERRIDDEN, "card": card}]})
    assert stored(app, card)[0]["audit_id"] == audit_id


def test_extensions_and_unknown_members_ignored_nulls_tolerated(app: Flask) -> None:
    item = {**OVERRIDDEN, "extension": {"com.example.ehr": {"x": 1}}, "acceptedSuggestions": None,
            "overrideReason": {"reason": {"code": "c1", "extension": {"a": 1}}, "userComment": None}}
    response = send(app, {"feedback": [item], "extension": {"y": 2}})
    assert response.status_code == 200
    assert stored(app, OVERRIDDEN["card"])[0]["override_code"] == "c1"


def test_user_comment_is_neither_stored_nor_logged(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    secret = "patient Jane Roe, MRN 12345, refused"
    item = copy.deepcopy(OVERRIDDEN_WITH_REASON)
    item["overrideReason"]["userComment"] = secret
    assert send(app, {"feedback": [item]}).status_code == 200
    assert secret not in caplog.text
    assert not any(secret in str(v) for v in stored(app, item["card"])[0].values())


# --- invalid -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        ({"outcome": "declined"}, "feedback[0].outcome"),
        ({"card": "not-a-uuid"}, "feedback[0].card"),
        ({"outcomeTimestamp": "2020-12-11"}, "feedback[0].outcomeTimestamp"),
        ({"outcomeTimestamp": "2020-12-11T00:00:00"}, "feedback[0].outcomeTimestamp"),  # no zone
        ({"outcomeTimestamp": "2020-13-11T00:00:00Z"}, "feedback[0].outcomeTimestamp"),
        ({"acceptedSuggestions": []}, "feedback[0].acceptedSuggestions"),
        ({"acceptedSuggestions": [{}]}, "feedback[0].acceptedSuggestions[0].id"),
        ({"overrideReason": {"reason": {"system": "urn:x"}}}, "feedback[0].overrideReason.reason.code"),
    ],
)
def test_invalid_item_names_the_element(app: Flask, change: dict[str, Any], expression: str) -> None:
    response = send(app, {"feedback": [{**ACCEPTED, **change}]})
    assert response.status_code == 400
    assert response.mimetype == "application/fhir+json"
    assert expression in expressions(response)
    assert stored(app, ACCEPTED["card"]) == []


def test_missing_members_are_required_issues(app: Flask) -> None:
    accepted_without_suggestions = {k: v for k, v in ACCEPTED.items() if k != "acceptedSuggestions"}
    no_timestamp = {k: v for k, v in OVERRIDDEN.items() if k != "outcomeTimestamp"}
    response = send(app, {"feedback": [no_timestamp, accepted_without_suggestions]})
    assert response.status_code == 400
    assert set(expressions(response)) == {"feedback[0].outcomeTimestamp", "feedback[1].acceptedSuggestions"}
    codes = {i["expression"][0]: i["code"] for i in response.get_json()["issue"]}
    assert codes["feedback[0].outcomeTimestamp"] == "required"


def test_suggestions_refused_on_an_override(app: Flask) -> None:
    response = send(app, {"feedback": [{**OVERRIDDEN, "acceptedSuggestions": [{"id": "s"}]}]})
    assert expressions(response) == ["feedback[0].acceptedSuggestions"]


def test_one_bad_item_stores_nothing(app: Flask) -> None:
    response = send(app, {"feedback": [OVERRIDDEN, {**ACCEPTED, "outcome": "maybe"}]})
    assert expressions(response) == ["feedback[1].outcome"]
    assert stored(app, OVERRIDDEN["card"]) == []


@pytest.mark.parametrize(
    ("body", "code", "expression"),
    [
        ('{"feedback": [', "structure", None),
        (b"\xff\xfe", "structure", None),
        ("", "structure", None),
        ({}, "required", "feedback"),
        ({"feedback": {"card": "x"}}, "invalid", "feedback"),
        ([ACCEPTED], "invalid", None),
    ],
)
def test_malformed_bodies(app: Flask, body: Any, code: str, expression: str | None) -> None:
    response = send(app, body)
    assert response.status_code == 400
    issue = response.get_json()["issue"][0]
    assert issue["code"] == code
    assert issue.get("expression", [None])[0] == expression


def test_errors_never_echo_the_submitted_values(app: Flask) -> None:
    response = send(app, {"feedback": [{**ACCEPTED, "outcome": "MRN-99887766", "card": "Jane-Roe"}]})
    assert response.status_code == 400
    assert b"MRN-99887766" not in response.data and b"Jane-Roe" not in response.data


def test_unknown_service_is_404(app: Flask) -> None:
    response = send(app, {"feedback": [ACCEPTED]}, url="/cds-services/no-such-service/feedback")
    assert response.status_code == 404
    assert response.get_json()["issue"][0]["code"] == "not-found"


@pytest.mark.parametrize("service_id", ["vcf-patient-view", "vcf-order-select", "vcf-order-sign"])
def test_every_discovered_service_takes_feedback(app: Flask, service_id: str) -> None:
    discovered = {s["id"] for s in app.test_client().get("/cds-services").get_json()["services"]}
    assert service_id in discovered
    response = send(app, {"feedback": [OVERRIDDEN]}, url=f"/cds-services/{service_id}/feedback")
    assert response.status_code == 200


def test_store_failure_is_503_transient(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    with app.app_context():
        store = current_store()

    def fail(*_: Any) -> Any:
        raise StoreError("store: could not store feedback (OperationalError)")

    monkeypatch.setattr(store, "store_feedback", fail)
    response = send(app, {"feedback": [ACCEPTED]})
    assert response.status_code == 503
    assert response.get_json()["issue"][0]["code"] == "transient"


def test_too_large_body_is_413_too_costly(tmp_path: Path) -> None:
    app = make_app(tmp_path, max_body_bytes=200)
    response = send(app, {"feedback": [ACCEPTED, OVERRIDDEN, OVERRIDDEN_WITH_REASON]})
    assert response.status_code == 413
    assert response.get_json()["issue"][0]["code"] == "too-costly"


# --- JWT and CORS ----------------------------------------------------------------------------------------


@pytest.fixture
def key() -> Key:
    return ec_key("fb-1")


@pytest.fixture
def secured(tmp_path: Path, key: Key) -> Flask:
    return make_app(
        tmp_path,
        trusted_issuers=issuers_file(tmp_path, {ISSUER: {"jwks": jwks(key)}}),
        cors_origins=(ORIGIN,),
        trust_host_header=True,
    )


def test_jwt_required_when_trust_is_configured(secured: Flask, key: Key) -> None:
    refused = send(secured, {"feedback": [ACCEPTED]})
    assert refused.status_code == 401
    assert refused.data == b""
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert stored(secured, ACCEPTED["card"]) == []

    wrong_aud = send(secured, {"feedback": [ACCEPTED]}, headers=bearer(mint(key, BASE + f"/cds-services/{SERVICE}")))
    assert wrong_aud.status_code == 401  # the service's token is not the feedback endpoint's

    ok = send(secured, {"feedback": [ACCEPTED]}, headers=bearer(mint(key, BASE + URL)))
    assert ok.status_code == 200
    assert len(stored(secured, ACCEPTED["card"])) == 1


def test_jwt_checked_before_the_service_id(secured: Flask) -> None:
    # an unauthenticated caller learns nothing about which services exist
    assert send(secured, {}, url="/cds-services/no-such-service/feedback").status_code == 401


def test_cors_preflight_for_a_configured_origin_only(secured: Flask, key: Key) -> None:
    client = secured.test_client()
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "Authorization, Content-Type"}
    ok = client.options(URL, headers={"Origin": ORIGIN, **preflight})
    assert ok.status_code == 200  # no JWT on a preflight
    assert ok.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "authorization" in ok.headers["Access-Control-Allow-Headers"].lower()
    assert "POST" in ok.headers["Access-Control-Allow-Methods"]

    refused = client.options(URL, headers={"Origin": "https://evil.example", **preflight})
    assert "Access-Control-Allow-Origin" not in refused.headers

    call = send(secured, {"feedback": [ACCEPTED]}, headers={"Origin": ORIGIN, **bearer(mint(key, BASE + URL))})
    assert call.status_code == 200
    assert call.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_absurdly_nested_json_is_a_400_not_a_500(app: Flask) -> None:
    response = send(app, "[" * 100_000 + "]" * 100_000)
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["code"] == "structure"


# --- only what the service issued ------------------------------------------------------------------------


def issues(response) -> list[tuple[str, str]]:
    return [(i["code"], i["expression"][0]) for i in response.get_json()["issue"]]


def test_unknown_card_is_refused_and_nothing_stored(app: Flask) -> None:
    never_issued = "5c9d1e0f-3f0e-4c38-9d0a-6f1d2b7e0c11"
    response = send(app, {"feedback": [OVERRIDDEN, {**OVERRIDDEN, "card": never_issued}]})
    assert response.status_code == 400
    assert response.mimetype == "application/fhir+json"
    assert issues(response) == [("not-found", "feedback[1].card")]
    assert stored(app, OVERRIDDEN["card"]) == []  # one bad item stores nothing


def test_a_card_of_another_service_is_unknown_here(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'fb.db'}"))
    card = "7d7c1f55-0d4b-4f43-9a55-57a4b1a7a6e2"
    issue(app, IssuedCard(card, (), ()), service_id="vcf-order-sign")
    assert send(app, {"feedback": [{**OVERRIDDEN, "card": card}]}).status_code == 400
    ok = send(app, {"feedback": [{**OVERRIDDEN, "card": card}]}, url="/cds-services/vcf-order-sign/feedback")
    assert ok.status_code == 200


def test_a_suggestion_the_card_did_not_carry_is_refused(app: Flask) -> None:
    other = {"id": "0f3f9a8e-1c47-4d0c-9d84-2a9e5c2d1b77"}
    response = send(app, {"feedback": [{**ACCEPTED, "acceptedSuggestions": [ACCEPTED["acceptedSuggestions"][0],
                                                                            other]}]})
    assert response.status_code == 400
    assert issues(response) == [("invalid", "feedback[0].acceptedSuggestions[1].id")]
    upper = {"id": ACCEPTED["acceptedSuggestions"][0]["id"].upper()}  # a UUID in capitals is the same UUID
    assert send(app, {"feedback": [{**ACCEPTED, "acceptedSuggestions": [upper]}]}).status_code == 200


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ({"system": REASON_SYSTEM, "code": "d7ecf885"}, 200),
        ({"code": "d7ecf885"}, 200),  # no system: matched on the code the card offered
        ({"system": "https://elsewhere.example/reasons", "code": "d7ecf885"}, 400),
        ({"system": REASON_SYSTEM, "code": "made-up"}, 400),
    ],
)
def test_an_override_reason_must_be_one_the_card_offered(app: Flask, reason: dict[str, str], status: int) -> None:
    item = {**OVERRIDDEN_WITH_REASON, "overrideReason": {"reason": reason}}
    response = send(app, {"feedback": [item]})
    assert response.status_code == status
    if status == 400:
        assert issues(response) == [("code-invalid", "feedback[0].overrideReason.reason")]


def test_a_card_that_offered_no_reasons_takes_none(app: Flask) -> None:
    item = {**ACCEPTED, "outcome": "overridden", "acceptedSuggestions": None,
            "overrideReason": {"reason": {"code": "d7ecf885"}}}
    assert issues(send(app, {"feedback": [item]})) == [("code-invalid", "feedback[0].overrideReason.reason")]
    comment_only = {**item, "overrideReason": {"userComment": "not now"}}
    assert send(app, {"feedback": [comment_only]}).status_code == 200


def test_a_card_audited_without_its_offers_is_checked_for_existence_only(app: Flask) -> None:
    """Cards audited before revision 0004 remembered no suggestions or reasons: unknown, not none."""
    card = "2b0b6c1d-8e3e-4a4e-8f55-0c7a9d1e2f33"
    with app.app_context():
        current_store().record_call(hook="patient-view", service_id=SERVICE, card_uuids=[card])
    item = {**ACCEPTED, "card": card, "acceptedSuggestions": [{"id": "any-id"}]}
    assert send(app, {"feedback": [item]}).status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        {"overrideReason": {"reason": {"code": "d7ecf885\x00"}}},
        {"overrideReason": {"reason": {"code": "d7ecf885", "system": "urn:\x00x"}}},
        {"overrideReason": {"userComment": "a\x00b"}},
    ],
)
def test_nul_characters_are_a_400_not_a_retry_later(app: Flask, change: dict[str, Any]) -> None:
    response = send(app, {"feedback": [{**OVERRIDDEN_WITH_REASON, **change}]})
    assert response.status_code == 400  # refused as input (the JSON reader, else the schema), never a 503
    assert response.get_json()["issue"][0]["code"] in {"structure", "invalid"}
    assert stored(app, OVERRIDDEN_WITH_REASON["card"]) == []


def test_a_value_the_database_refuses_is_a_400(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever slips past the checks and is refused by the database as a value (PostgreSQL: a NUL)
    is permanent: 400, never the 503 that tells the EHR to retry."""
    with app.app_context():
        store = current_store()

    def refuse(*_: Any) -> Any:
        raise StoreValueError("store: the database refused a feedback value (DataError)")

    monkeypatch.setattr(store, "store_feedback", refuse)
    response = send(app, {"feedback": [OVERRIDDEN]})
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["code"] == "invalid"


# --- reading it back -------------------------------------------------------------------------------------


def read_back(app: Flask, card: str, service_id: str = SERVICE, **kwargs: Any):
    return app.test_client().get(f"/cds-services/{service_id}/feedback/{card}", **kwargs)


def test_stored_feedback_reads_back_per_card(app: Flask) -> None:
    assert read_back(app, ACCEPTED["card"]).get_json() == {
        "card": ACCEPTED["card"], "service": SERVICE, "feedback": []}  # issued, no feedback yet
    send(app, {"feedback": [ACCEPTED, OVERRIDDEN_WITH_REASON]})
    send(app, {"feedback": [{**OVERRIDDEN_WITH_REASON, "outcomeTimestamp": "2020-12-11T00:05:00+01:00"}]})
    body = read_back(app, ACCEPTED["card"].upper()).get_json()
    (accepted,) = body["feedback"]
    assert accepted["outcome"] == "accepted" and accepted["outcomeTimestamp"] == "2020-12-11T00:00:00Z"
    assert accepted["acceptedSuggestions"] == ACCEPTED["acceptedSuggestions"]
    assert "overrideReason" not in accepted and accepted["received"].endswith("Z")
    response = read_back(app, OVERRIDDEN_WITH_REASON["card"])
    assert response.mimetype == "application/json"
    first, second = response.get_json()["feedback"]
    assert first["overrideReason"] == {"reason": {"system": REASON_SYSTEM, "code": "d7ecf885"},
                                       "userCommentGiven": True}
    assert "clinician entered comment" not in response.get_data(as_text=True)  # never stored
    assert second["outcomeTimestamp"] == "2020-12-10T23:05:00Z"


def test_read_back_of_unknown_cards_services_and_malformed_uuids(app: Flask) -> None:
    assert read_back(app, "5c9d1e0f-3f0e-4c38-9d0a-6f1d2b7e0c11").status_code == 404
    assert read_back(app, ACCEPTED["card"], service_id="no-such-service").status_code == 404
    bad = read_back(app, "not-a-uuid")
    assert bad.status_code == 400 and bad.get_json()["issue"][0]["expression"] == ["card"]


def test_read_back_needs_the_same_jwt(secured: Flask, key: Key) -> None:
    issue(secured, *ISSUED)
    url = f"/cds-services/{SERVICE}/feedback/{ACCEPTED['card']}"
    assert read_back(secured, ACCEPTED["card"]).status_code == 401
    ok = read_back(secured, ACCEPTED["card"], headers=bearer(mint(key, BASE + url)))
    assert ok.status_code == 200 and ok.get_json()["card"] == ACCEPTED["card"]
