"""A browser-based CDS client on another origin (what the CDS Hooks Sandbox is) against the demo, in a
real browser: headless Chromium enforces CORS, so this is the check that such a client works against
`serve --demo` with no setting at all. The page, served from another port (so another origin), does
what the Sandbox does: discovery, a patient-view call as a real EHR makes it (no as-of date), the
feedback of the accepted card, and reads the feedback back. The REST API, which demo mode does not
open to other origins, is the control: the browser must refuse it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from browser_support import browser, free_port, live_server  # noqa: F401 (fixtures)
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

SANDBOX_PORTS = range(18560, 18600)  # this helper's loopback range: the client page's origin

PAGE = """<!doctype html><html><head><title>running</title></head><body><script>
const base = %(base)s;
async function json(response) { return {status: response.status, body: await response.json()}; }
async function run() {
  const out = {};
  out.discovery = (await fetch(base + "/cds-services")).status;
  const ready = base + "/demo/fhir/$cds-hooks-request?patient=p-tanaka&hook=patient-view";
  const request = (await json(await fetch(ready))).body;
  out.namedDate = "extension" in request;
  const answer = await json(await fetch(base + "/cds-services/vcf-patient-view", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(request)}));
  const card = answer.body.cards[0];
  out.decision = card.extension["fhir-vcf"].decision;
  out.asOf = card.extension["fhir-vcf"].asOf;
  const accepted = [{id: card.suggestions[0].uuid}];
  const feedback = {feedback: [{card: card.uuid, outcome: "accepted", acceptedSuggestions: accepted,
                                outcomeTimestamp: new Date().toISOString()}]};
  out.feedback = (await fetch(base + "/cds-services/vcf-patient-view/feedback", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(feedback)})).status;
  const stored = base + "/cds-services/vcf-patient-view/feedback/" + card.uuid;
  out.readBack = (await json(await fetch(stored))).body.feedback.length;
  try { await fetch(base + "/api/v1/policies"); out.restApi = "allowed"; } catch (e) { out.restApi = "refused"; }
  document.body.textContent = JSON.stringify(out);
  document.title = "done";
}
run().catch(e => { document.body.textContent = String(e); document.title = "failed"; });
</script></body></html>"""


@pytest.fixture(scope="module")
def client_page(live_server) -> Iterator[SimpleNamespace]:  # noqa: F811
    html = PAGE % {"base": json.dumps(live_server.base)}

    def app(environ, start_response):
        return Response(html, mimetype="text/html")(environ, start_response)

    port = free_port(SANDBOX_PORTS)
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}/")
    finally:
        httpd.shutdown()
        thread.join(timeout=10)


def test_a_browser_client_on_another_origin_uses_the_demo_with_no_setting(browser, client_page):  # noqa: F811
    from fhir_vcf.clinical_time import today_utc

    browser.get(client_page.url)
    deadline = time.monotonic() + 30
    while browser.title == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    text = browser.execute_script("return document.body.textContent")
    assert browser.title == "done", text
    out = json.loads(text)
    assert out == {"discovery": 200, "namedDate": False, "decision": "eligible", "asOf": today_utc().isoformat(),
                   "feedback": 200, "readBack": 1, "restApi": "refused"}
