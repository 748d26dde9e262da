"""The pages transport (fhir_vcf.service.pages): a card's link opens its explanation without EHR
credentials and nothing else does; the governance view counts cards and feedback for the admin only."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from fhir_vcf.app import create_app
from fhir_vcf.config import Settings

AS_OF = "2025-06-30"
ADMIN = "governance-admin-token-" + "x" * 24
KEY = Fernet.generate_key().decode()


def make(tmp_path: Path, **overrides: Any):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'pages.db'}", demo=True, evaluation_keys=(KEY,),
                        admin_token=ADMIN, public_base_url="https://vcf.example.org", **overrides)
    app = create_app(settings)
    app.testing = True
    return app


@pytest.fixture
def app(tmp_path: Path):
    return make(tmp_path)


def hook_call(client, patient: str, hook: str = "patient-view") -> dict[str, Any]:
    """A real hook call: the demo endpoint builds the request an EHR would send (full prefetch)."""
    body = client.get(f"/demo/fhir/$cds-hooks-request?patient={patient}&hook={hook}&asOf={AS_OF}").json
    service = {"patient-view": "vcf-patient-view", "order-sign": "vcf-order-sign"}[hook]
    response = client.post(f"/cds-services/{service}", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def page_path(card: dict[str, Any]) -> str:
    link = next(link for link in card["links"] if link["label"] == "Open the full explanation")
    assert link["url"].startswith("https://vcf.example.org/explanations/")
    return link["url"].removeprefix("https://vcf.example.org")


def test_a_card_link_opens_the_page_without_credentials(app):
    client = app.test_client()
    (card,) = hook_call(client, "p-moreau")["cards"]
    response = client.get(page_path(card))  # no Authorization header, no cookie
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "Helene Moreau" in html and 'data-decision="eligible"' in html
    assert card["extension"]["fhir-vcf"]["evaluation"][:8] in html  # the page names the evaluation it shows
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("damage", ["tampered", "unknown", "garbage", "empty-ish"])
def test_anything_but_a_good_link_is_a_plain_404_with_no_patient_data(app, damage):
    client = app.test_client()
    (card,) = hook_call(client, "p-moreau")["cards"]
    path = page_path(card)
    token = path.rsplit("/", 1)[1]
    payload, stamp, mac = token.split(".")
    bad = {
        "tampered": f"{payload}.{stamp}.{'A' if mac[0] != 'A' else 'B'}{mac[1:]}",
        "unknown": app.extensions["fhir_vcf"].links.token(str(uuid.uuid4())),  # well signed, nothing kept
        "garbage": "../../etc/passwd",
        "empty-ish": ".",
    }[damage]
    response = client.get(f"/explanations/{bad}")
    assert response.status_code == 404 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "Not found" in html
    body = html.split("<main", 1)[1]  # (the stylesheet names the badge colours, not a decision)
    for secret in ("Moreau", "p-moreau", "eligible", "MRN", "L1"):
        assert secret not in body
    assert response.headers["Cache-Control"] == "no-store"


def test_an_expired_link_and_a_purged_evaluation_are_404(app, monkeypatch):
    client = app.test_client()
    (card,) = hook_call(client, "p-moreau")["cards"]
    path = page_path(card)
    import time as time_module

    real = time_module.time
    monkeypatch.setattr(time_module, "time", lambda: real() + 25 * 3600)  # past the 24 h link lifetime
    assert client.get(path).status_code == 404
    monkeypatch.setattr(time_module, "time", real)
    kept = app.extensions["fhir_vcf"].kept
    kept.purge(now=datetime.now(UTC).replace(tzinfo=None) + timedelta(days=8))  # past the 7-day retention
    assert client.get(path).status_code == 404


def test_a_link_from_another_install_opens_nothing(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = make(tmp_path / "a")
    other = make(tmp_path / "b", link_secret="another-link-secret-" + "y" * 20)
    (card,) = hook_call(one.test_client(), "p-moreau")["cards"]
    assert other.test_client().get(page_path(card)).status_code == 404


def test_the_warning_without_keys_is_a_json_log_line(tmp_path):
    # In a fresh process (as under `fhir-vcf serve`), before any request: docs/configuration.md
    # promises JSON log lines, and this warning came out as bare text before the handler existed.
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_VCF_")}
    code = f"from fhir_vcf.app import create_app; create_app({{'database_url': 'sqlite:///{tmp_path / 'w.db'}'}})"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]  # every line is JSON
    assert any("explanation pages are off" in line["message"] and line["level"] == "WARNING" for line in lines)


def test_without_keys_outside_demo_there_are_no_links_and_no_pages(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'off.db'}"))
    assert "explanation pages are off" in caplog.text
    client = app.test_client()
    posted = client.post(f"/api/v1/evaluations?asOf={AS_OF}",
                         data=(Path(__file__).resolve().parent.parent / "samples" /
                               "eligible-outpatient-worsening.json").read_bytes(),
                         content_type="application/fhir+json")
    (evaluation,) = posted.json["evaluations"]
    assert "explanationUrl" not in evaluation and "evaluationId" not in evaluation
    assert client.get("/explanations/anything").status_code == 404


def test_every_card_of_an_order_sign_call_gets_its_own_page(app):
    client = app.test_client()
    cards = hook_call(client, "p-tanaka", "order-sign")["cards"]
    paths = [page_path(card) for card in cards]
    assert len(set(paths)) == len(cards) >= 1
    html = client.get(paths[0]).get_data(as_text=True)
    assert "kyphoplasty" in html.lower() and "ServiceRequest/p-tanaka-pva-24" in html


def test_the_page_token_is_never_logged(app, caplog):
    caplog.set_level(logging.DEBUG)
    client = app.test_client()
    (card,) = hook_call(client, "p-moreau")["cards"]
    token = page_path(card).rsplit("/", 1)[1]
    client.get(page_path(card))
    client.get(f"/explanations/{token}x")
    logged = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert token not in logged


# --- governance ------------------------------------------------------------------------------------


def feedback(client, service: str, card: dict[str, Any], outcome: str, reason: str | None = None) -> None:
    item: dict[str, Any] = {"card": card["uuid"], "outcome": outcome, "outcomeTimestamp": "2025-06-30T14:02:00Z"}
    if outcome == "accepted":
        item["acceptedSuggestions"] = [{"id": card["suggestions"][0]["uuid"]}]
    if reason:
        item["overrideReason"] = {"reason": {"system": "urn:fhir-vcf:override-reason", "code": reason,
                                             "display": reason.replace("-", " ")}}
    response = client.post(f"/cds-services/{service}/feedback", json={"feedback": [item]})
    assert response.status_code == 200, response.get_data(as_text=True)


def test_governance_counts_cards_and_outcomes_per_decision_and_week(app):
    client = app.test_client()
    (eligible,) = hook_call(client, "p-moreau")["cards"]
    (denied,) = hook_call(client, "p-x2-haddad")["cards"]
    hook_call(client, "p-x7-ionescu")  # not eligible too; no feedback comes for it
    feedback(client, "vcf-patient-view", eligible, "accepted")
    feedback(client, "vcf-patient-view", denied, "overridden", "clinical-judgement")
    as_admin = {"Authorization": f"Bearer {ADMIN}"}
    numbers = client.get("/governance/summary.json", headers=as_admin).json
    assert numbers["totals"] == {"shown": 3, "accepted": 1, "overridden": 1, "noFeedback": 1}
    by_decision = {d["decision"]: d for d in numbers["byDecision"]}
    assert by_decision["eligible"]["accepted"] == 1
    assert by_decision["not-eligible"]["shown"] == 2 and by_decision["not-eligible"]["overridden"] == 1
    assert by_decision["not-eligible"]["overrideReasons"][0]["code"] == "clinical-judgement"
    assert sum(w["shown"] for w in numbers["byWeek"]) == 3 and len(numbers["byWeek"]) == 12
    html = client.get("/governance", headers=as_admin).get_data(as_text=True)
    assert html.count("<svg viewBox") == 3 and "clinical judgement" in html
    assert re.search(r"<strong>3</strong> cards shown", html)
    for secret in ("Moreau", "p-moreau", "Haddad"):
        assert secret not in html and secret not in str(numbers)  # counts only


def test_governance_needs_the_admin_token(app):
    client = app.test_client()
    assert client.get("/governance").status_code == 401
    assert "Admin token" in client.get("/governance").get_data(as_text=True)
    assert client.get("/governance", headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = client.get("/governance/summary.json")
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.post("/governance", data={"token": "wrong"}).status_code == 401


def test_a_browser_signs_in_once_and_keeps_a_session_cookie(app):
    client = app.test_client()
    response = client.post("/governance", data={"token": ADMIN})
    assert response.status_code == 303 and response.headers["Location"].endswith("/governance")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and ADMIN not in cookie
    assert client.get("/governance").status_code == 200  # the cookie is the credential now
    assert client.get("/governance/summary.json").status_code == 200


def test_without_an_admin_token_the_view_does_not_exist(tmp_path):
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'g.db'}", demo=True))
    client = app.test_client()
    assert client.get("/governance").status_code == 404
    assert client.get("/governance/summary.json").status_code == 404
    assert client.post("/governance", data={"token": "x"}).status_code == 404
