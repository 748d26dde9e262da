"""The explanation page and the governance view in a real browser (headless Chromium, Selenium), from
a real hook call on the running service: what a person sees, what prints, and what a tampered link
shows. One browser and one server for the whole session (tests/browser_support.py).

Set FHIR_VCF_SCREENSHOTS=docs/screenshots to refresh the README's screenshots from this run.
"""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests
from browser_support import browser, live_server, pdf_pages, print_pdf  # noqa: F401 (fixtures)

from fhir_vcf.evaluation import evaluate_record
from fhir_vcf.rules.policy import load_policies
from fhir_vcf.sources.files import load_file

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
AS_OF = "2025-06-30"
TYPICAL = ("p-tanaka", "eligible-requested-kyphoplasty-t12-l1.json")  # eligible, kyphoplasty ordered at T12-L1
SCREENSHOTS = os.environ.get("FHIR_VCF_SCREENSHOTS")


def card_for(base: str, patient: str, hook: str = "patient-view") -> dict[str, Any]:
    """A hook call as an EHR makes it: the demo builds the request (full prefetch), the service answers."""
    body = requests.get(f"{base}/demo/fhir/$cds-hooks-request",
                        params={"patient": patient, "hook": hook, "asOf": AS_OF}, timeout=10).json()
    response = requests.post(f"{base}/cds-services/vcf-{hook}", json=body, timeout=10)
    assert response.status_code == 200, response.text
    (card,) = response.json()["cards"]
    return card


def explanation_link(card: dict[str, Any]) -> str:
    return next(link["url"] for link in card["links"] if link["label"] == "Open the full explanation")


@pytest.fixture(scope="module")
def typical(live_server, browser) -> dict[str, Any]:  # noqa: F811
    """The typical case's card, its page open in the browser, and the evaluation it should show."""
    patient, sample = TYPICAL
    card = card_for(live_server.base, patient)
    (expected,) = [evaluate_record(r, as_of=date.fromisoformat(AS_OF), policy=load_policies()["cms-lcd-pva"])
                   for r in load_file(SAMPLES / sample)]
    started = time.perf_counter()
    browser.get(explanation_link(card))
    opened_ms = (time.perf_counter() - started) * 1000
    return {"card": card, "expected": expected, "opened_ms": opened_ms}


def test_the_card_link_shows_the_decision_and_the_patient(browser, typical):  # noqa: F811
    from selenium.webdriver.common.by import By

    badge = browser.find_element(By.CSS_SELECTOR, "article .badge")
    assert badge.is_displayed() and badge.text.strip() == "Eligible"
    assert browser.find_element(By.CSS_SELECTOR, "article h2").text == "Michiko Tanaka"
    assert "Kyphoplasty" in browser.find_element(By.CSS_SELECTOR, "dl.facts").text
    assert typical["card"]["extension"]["fhir-vcf"]["decision"] == "eligible"


def test_every_criterion_is_shown_with_its_status_and_source(browser, typical):  # noqa: F811
    from selenium.webdriver.common.by import By

    for criterion in typical["expected"]["criteria"]:
        row = browser.find_element(By.CSS_SELECTOR, f'tr[data-criterion="{criterion["id"]}"]')
        assert row.is_displayed(), criterion["id"]
        text = row.text
        assert criterion["title"] in text and criterion["source"] in text, criterion["id"]
        assert row.get_attribute("data-status") == criterion["status"]
        assert row.find_element(By.CSS_SELECTOR, ".status").text.strip()  # the status in words
        assert row.find_element(By.CSS_SELECTOR, ".status svg.icon")  # and its icon
        if criterion.get("sourceUrl"):
            assert row.find_element(By.CSS_SELECTOR, ".source a").get_attribute("href") == criterion["sourceUrl"]


def test_evidence_reads_as_text_with_the_reference_beside_it(browser, typical):  # noqa: F811
    from selenium.webdriver.common.by import By

    imaging = browser.find_element(By.CSS_SELECTOR, 'tr[data-criterion="I3"] td.evidence').text
    assert "MRI" in imaging and "edema" in imaging.lower()
    pain = browser.find_element(By.CSS_SELECTOR, 'tr[data-criterion="I4"] td.evidence').text
    assert "NRS 9 on 2025-06-27" in pain and "Observation/" in pain


def test_the_timeline_is_drawn(browser, typical):  # noqa: F811
    from selenium.webdriver.common.by import By

    svg = browser.find_element(By.CSS_SELECTOR, "svg.timeline")
    assert svg.is_displayed() and svg.size["width"] > 600 and svg.size["height"] > 150
    assert len(svg.find_elements(By.CSS_SELECTOR, "circle")) == len(typical["expected"]["timeline"]["painScores"])
    labels = " ".join(t.text for t in svg.find_elements(By.CSS_SELECTOR, "text"))
    assert "onset T12" in labels and "acute" in labels and "kyphoplasty T12" in labels


def test_keyboard_reaches_the_skip_link_first_with_a_visible_focus(browser, typical):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    focused = browser.switch_to.active_element
    assert focused.get_attribute("class") == "skip" and focused.is_displayed()
    assert browser.execute_script("return getComputedStyle(arguments[0]).outlineStyle", focused) != "none"


def test_a_typical_case_prints_on_two_pages(browser, typical):  # noqa: F811
    pdf = print_pdf(browser)
    assert pdf.startswith(b"%PDF")
    assert 1 <= pdf_pages(pdf) <= 2
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        (Path(SCREENSHOTS) / "explanation.pdf").write_bytes(pdf)


def test_the_page_loads_nothing_from_elsewhere(browser, typical, live_server):  # noqa: F811
    entries = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert [e for e in entries if not e.startswith(live_server.base)] == []
    assert entries == []  # inline stylesheet and SVG: no second request at all


def test_screenshots_for_the_docs(browser, typical, live_server):  # noqa: F811
    """Also records the numbers the report quotes (page weight, time to open)."""
    timing = browser.execute_script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "return {bytes: n.transferSize || n.encodedBodySize, body: n.decodedBodySize,"
        " dcl: n.domContentLoadedEventEnd - n.startTime, load: n.loadEventEnd - n.startTime};")
    assert timing["body"] > 0
    if SCREENSHOTS:
        browser.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
        browser.set_window_size(1280, 1400)
        browser.save_screenshot(str(Path(SCREENSHOTS) / "explanation.png"))
        print(f"\nexplanation page: {timing['body']} bytes, DOMContentLoaded {timing['dcl']:.0f} ms, "
              f"load {timing['load']:.0f} ms, opened in {typical['opened_ms']:.0f} ms (incl. the request)")


def test_a_tampered_link_shows_no_patient_data(browser, live_server):  # noqa: F811
    from selenium.webdriver.common.by import By

    link = explanation_link(card_for(live_server.base, "p-moreau"))
    head, _, token = link.rpartition("/")
    payload, stamp, mac = token.split(".")
    tampered = f"{head}/{payload}.{stamp}.{'A' if mac[0] != 'A' else 'B'}{mac[1:]}"
    assert requests.get(tampered, timeout=10).status_code == 404
    browser.get(tampered)
    main = browser.find_element(By.TAG_NAME, "main").text
    assert "Not found" in main
    for secret in ("Moreau", "p-moreau", "Eligible", "L1", "MRN"):
        assert secret not in main and secret not in browser.title
    browser.get(link)  # the genuine link still works
    assert "Helene Moreau" in browser.find_element(By.CSS_SELECTOR, "article h2").text


def test_the_governance_view_after_signing_in(browser, live_server):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    card = card_for(live_server.base, "p-x2-haddad")
    requests.post(f"{live_server.base}/cds-services/vcf-patient-view/feedback", timeout=10, json={"feedback": [{
        "card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2025-06-30T14:02:00Z",
        "overrideReason": {"reason": {"system": "urn:fhir-vcf:override-reason", "code": "clinical-judgement",
                                      "display": "Clinical judgement: the benefit outweighs the guideline"}}}]})
    browser.get(f"{live_server.base}/governance")
    assert "Admin token" in browser.find_element(By.TAG_NAME, "main").text  # no data before signing in
    browser.find_element(By.ID, "token").send_keys(live_server.admin)
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".chart svg"))  # after the 303
    charts = browser.find_elements(By.CSS_SELECTOR, ".chart svg")
    assert len(charts) == 3 and all(chart.is_displayed() for chart in charts)
    assert "Clinical judgement" in browser.find_element(By.TAG_NAME, "main").text
    if SCREENSHOTS:
        browser.set_window_size(1280, 1300)
        browser.save_screenshot(str(Path(SCREENSHOTS) / "governance.png"))
