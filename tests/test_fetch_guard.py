"""Issue 10: the FHIR fetch against hostile and faulty upstreams, with a real (fake) server on loopback.

Each test names the attack it stands for; docs/security.md lists them. The FHIR client is the real
one (requests + urllib3); only the server misbehaves.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time

import pytest
from fake_fhir import FakeFhir, answer, drip, drip_headers, gzip_bomb, hang, huge, redirect

from fhir_vcf import logs
from fhir_vcf.config import Settings
from fhir_vcf.errors import Unavailable
from fhir_vcf.service.registry import fhir_client_factory
from fhir_vcf.sources.fhir_server import FetchSlots, FhirBase, FhirClient, UnsafeUrl, normalise_url
from fhir_vcf.sources.prefetch import (
    PREFETCH_TEMPLATES,
    InvalidServer,
    PrefetchUnavailable,
    check_fhir_server,
    request_record,
)

TOKEN = "fetch-guard-token-5f1e"
MIB = 1024 * 1024


@pytest.fixture
def fake():
    server = FakeFhir()
    yield server
    server.close()


@pytest.fixture
def other():
    server = FakeFhir()
    yield server
    server.close()


def bundle(*resources, next_url=None):
    body = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}
    if next_url:
        body["link"] = [{"relation": "next", "url": next_url}]
    return body


def condition(cid, patient="p1"):
    return {"resourceType": "Condition", "id": cid, "subject": {"reference": f"Patient/{patient}"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M80.08XA"}]},
            "onsetDateTime": "2025-06-02"}


def prefetch_without(*keys):
    prefetch = {key: bundle() for key in PREFETCH_TEMPLATES}
    prefetch["patient"] = {"resourceType": "Patient", "id": "p1"}
    for key in keys:
        del prefetch[key]
    return prefetch


def build(server, prefetch, *, budget=3.0, slots=None, **limits):
    settings = Settings(fhir_connect_timeout=0.5, fhir_read_timeout=0.5, fhir_max_pages=3, **limits)
    return request_record(context={"patientId": "p1", "userId": "Practitioner/dr-1"}, prefetch=prefetch,
                               fhir_server=server, token=TOKEN, client_factory=fhir_client_factory(settings),
                               budget=budget, slots=slots)


def outside(server: FakeFhir) -> list[str]:
    return [p for p in server.paths() if not p.startswith("/fhir/")]


# --- one guarded path: redirects, next links, one parser ----------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_to_another_port_is_not_followed(fake, other, status):
    """An allowlisted server answering a search with a redirect elsewhere: nothing fetched there."""
    fake.routes["/fhir/Condition"] = redirect(f"{other.base}/Condition?patient=p1", status)
    other.routes["/fhir/Condition"] = answer(200, bundle(condition("other-1")))
    with pytest.raises(PrefetchUnavailable) as info:
        build(fake.base, prefetch_without("conditions"))
    assert "redirect" in str(info.value) and info.value.keys == ("conditions",)
    assert other.seen == []


def test_redirect_on_the_same_host_does_not_carry_the_token(fake):
    fake.routes["/fhir/Condition"] = redirect(f"{fake.origin}/admin/collect", 307)
    fake.routes["/admin/collect"] = answer(200, bundle())
    with pytest.raises(PrefetchUnavailable):
        build(fake.base, prefetch_without("conditions"))
    assert outside(fake) == []


@pytest.mark.parametrize("next_url", [
    "{base}/../admin/steal?page=2",            # absolute, with .. segments
    "../admin/steal?page=2",                   # relative, with .. segments
    "{base}/Condition/../../admin/steal",      # .. past the base from deeper
    "{base}/%2e%2e/admin/steal",               # encoded dots (requests decodes them)
    "{base}/./%2E%2E/admin/steal",
])
def test_next_link_leaving_the_base_is_refused(fake, next_url):
    fake.routes["/fhir/Condition"] = answer(200, bundle(condition("c1"), next_url=next_url.format(base=fake.base)))
    fake.routes["/admin/*"] = answer(200, bundle(condition("stolen")))
    with pytest.raises(PrefetchUnavailable) as info:
        build(fake.base, prefetch_without("conditions"))
    assert "outside its base" in str(info.value)
    assert outside(fake) == []


def test_next_link_with_backslash_at_is_refused_and_the_other_port_never_called(fake, other):
    """`http://127.0.0.1:A\\@127.0.0.1:B/...`: parsed one way by a check, another by urllib3."""
    trick = f"{fake.origin}\\@127.0.0.1:{other.httpd.server_port}/fhir/Condition?page=2"
    fake.routes["/fhir/Condition"] = answer(200, bundle(condition("c1"), next_url=trick))
    other.routes["/fhir/*"] = answer(200, bundle(condition("stolen")))
    with pytest.raises(PrefetchUnavailable):
        build(fake.base, prefetch_without("conditions"))
    assert other.seen == []


def test_next_link_under_the_base_is_followed_with_the_token(fake):
    fake.routes["/fhir/Condition?page=2"] = answer(200, bundle(condition("c2")))
    fake.routes["/fhir/Condition"] = answer(200, bundle(condition("c1"), next_url=f"{fake.base}/Condition?page=2"))
    record = build(fake.base, prefetch_without("conditions"))
    assert sorted(record.ref(c) for c in record.of_type("Condition")) == ["Condition/c1", "Condition/c2"]
    assert [s.authorization for s in fake.seen] == [f"Bearer {TOKEN}"] * 2


def test_a_prefetched_bundles_next_link_outside_the_base_is_refused_before_any_call(fake, other):
    prefetch = prefetch_without()
    prefetch["conditions"] = bundle(condition("c1"), next_url=f"{other.base}/Condition?page=2")
    with pytest.raises(PrefetchUnavailable):
        build(fake.base, prefetch)
    assert fake.seen == [] and other.seen == []


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:1/fhir?@evil.test", "http://127.0.0.1:1/fhir#@evil.test", "http://user:pw@127.0.0.1:1/fhir",
    "http://127.0.0.1:1\\@evil.test/fhir", "http://127.0.0.1:1/fhir\n", "ftp://127.0.0.1/fhir", "http:///fhir",
    "http://127.0.0.1:99999/fhir",
])
def test_tricky_fhir_server_values_are_refused_as_malformed(url):
    with pytest.raises(InvalidServer):
        check_fhir_server(url, [url, "http://127.0.0.1:1/fhir"])


def test_userinfo_never_replaces_the_bearer_token(fake):
    """requests would turn user:pw@ into Basic auth over our Authorization header: refused outright."""
    with pytest.raises(UnsafeUrl):
        FhirClient(f"http://user:pw@127.0.0.1:{fake.httpd.server_port}/fhir", token=TOKEN)
    client = FhirClient(fake.base, token=TOKEN)
    with pytest.raises(UnsafeUrl):
        client.get(f"http://user:pw@127.0.0.1:{fake.httpd.server_port}/fhir/Patient/p1")
    assert fake.seen == []


def test_one_parser_normalises_what_is_checked_and_sent():
    assert normalise_url("HTTP://Example.ORG:80/fhir/./a/../b") == "http://example.org:80/fhir/b"
    base = FhirBase.parse("http://example.org/fhir/")
    assert base.url == "http://example.org/fhir"
    assert base.resolve("Condition?patient=p1") == "http://example.org/fhir/Condition?patient=p1"
    assert base.resolve("http://EXAMPLE.org:80/fhir/Patient/1") == "http://example.org:80/fhir/Patient/1"
    for escape in ("http://example.org/fhirx/Patient", "http://example.org/Patient", "https://example.org/fhir/x",
                   "http://example.org:8080/fhir/x", "Condition/../../admin"):
        with pytest.raises(UnsafeUrl):
            base.resolve(escape)


# --- budgets: size, decompression, time, concurrency ---------------------------------------------------


def test_an_announced_50_mb_page_is_refused_unread(fake):
    fake.routes["/fhir/Observation"] = huge(50 * MIB)
    started = time.monotonic()
    with pytest.raises(PrefetchUnavailable) as info:
        build(fake.base, prefetch_without("observations"), fhir_max_response_bytes=MIB)
    assert "FHIR_VCF_FHIR_MAX_RESPONSE_BYTES" in str(info.value)
    assert time.monotonic() - started < 2.0


def test_an_unannounced_50_mb_page_is_cut_at_the_cap(fake):
    fake.routes["/fhir/Observation"] = huge(50 * MIB, announce=False)
    with pytest.raises(PrefetchUnavailable) as info:
        build(fake.base, prefetch_without("observations"), fhir_max_response_bytes=MIB)
    assert "FHIR_VCF_FHIR_MAX_RESPONSE_BYTES" in str(info.value)
    time.sleep(0.2)
    assert fake.sent.get("/fhir/Observation?patient=p1&_count=100&_sort=-date", 0) < 10 * MIB


def test_a_gzip_bomb_is_not_inflated_past_the_cap(fake):
    """200 kB of gzip inflating to 200 MB in the issue; here 50 MB, with a 1 MiB decompressed cap."""
    fake.routes["/fhir/Observation"] = gzip_bomb(50 * MIB)
    with pytest.raises(PrefetchUnavailable) as info:
        build(fake.base, prefetch_without("observations"), fhir_max_decoded_bytes=MIB)
    assert "decompressed" in str(info.value)


def test_the_decompressed_budget_is_per_call_across_keys(fake):
    page = bundle(*[condition(f"c{i}") | {"note": [{"text": "x" * 2000}]} for i in range(100)])
    fake.routes["/fhir/*"] = answer(200, page)
    with pytest.raises(PrefetchUnavailable) as info:  # each page is ~215 kB; six keys are more than 1 MiB
        build(fake.base, prefetch_without("conditions", "observations", "encounters", "procedures",
                                          "carePlans", "serviceRequests"), fhir_max_decoded_bytes=MIB)
    assert "for one call" in str(info.value)


@pytest.mark.parametrize("behaviour", [drip(0.2), drip_headers(0.2), hang()], ids=["body", "headers", "silent"])
def test_a_slow_server_is_cut_off_at_the_budget_and_keeps_no_thread(fake, behaviour):
    """A server dripping a byte at a time kept fetch threads busy for 30 s after the hook answered."""
    fake.routes["/fhir/Procedure"] = behaviour
    started = time.monotonic()
    with pytest.raises(PrefetchUnavailable):
        build(fake.base, prefetch_without("procedures"), budget=1.0)
    assert time.monotonic() - started < 1.8
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(t.name.startswith("prefetch") for t in threading.enumerate()):
        time.sleep(0.05)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("prefetch")]


def test_retries_stop_at_the_budget(fake):
    fake.routes["/fhir/Procedure"] = answer(503, {"resourceType": "OperationOutcome"}, {"Retry-After": "30"})
    started = time.monotonic()
    with pytest.raises(PrefetchUnavailable):
        build(fake.base, prefetch_without("procedures"), budget=0.8)
    assert time.monotonic() - started < 1.6


def test_fetching_calls_are_bounded_per_worker_and_prefetched_calls_are_not(fake):
    """16 calls stuck on a slow server starved fully-prefetched calls of threads: the fetching calls
    now take a slot each, a call finding none is told at once (503), and a complete prefetch needs none."""
    fake.routes["/fhir/Procedure"] = hang()
    slots = FetchSlots(1, wait=0.05)
    def stuck_call() -> None:
        with pytest.raises(PrefetchUnavailable):
            build(fake.base, prefetch_without("procedures"), budget=1.5, slots=slots)

    stuck = threading.Thread(target=stuck_call)
    stuck.start()
    time.sleep(0.3)
    started = time.monotonic()
    with pytest.raises(Unavailable) as info:
        build(fake.base, prefetch_without("procedures"), slots=slots)
    assert info.value.retry_after >= 1 and time.monotonic() - started < 0.5
    record = build(fake.base, prefetch_without(), slots=slots)  # complete prefetch: no slot needed
    assert record.patient == "Patient/p1"
    stuck.join(5)
    build(fake.base, prefetch_without(), slots=slots)
    fake.routes["/fhir/Procedure"] = answer(200, bundle())
    build(fake.base, prefetch_without("procedures"), slots=slots)  # the slot came back


# --- the request's context reaches the fetch ----------------------------------------------------------


def test_fetch_threads_log_the_request_id_and_calls_carry_the_trace(fake):
    fake.routes["/fhir/Procedure"] = answer(500, {"resourceType": "OperationOutcome"})
    fake.routes["/fhir/Encounter"] = answer(200, bundle())
    seen: list[tuple[str, str | None]] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((threading.current_thread().name, logs.current_request_id()))

    handler = Catch(logging.WARNING)
    logging.getLogger("fhir_vcf.sources").addHandler(handler)
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    try:
        with logs.request_context("req-fetch-1", parent), pytest.raises(PrefetchUnavailable):
            contextvars.copy_context().run(build, fake.base, prefetch_without("procedures", "encounters"))
    finally:
        logging.getLogger("fhir_vcf.sources").removeHandler(handler)
    assert any(name.startswith("prefetch") for name, _ in seen)
    assert {rid for _, rid in seen} == {"req-fetch-1"}
    traces = {s.traceparent.split("-")[1] for s in fake.seen if s.traceparent}
    assert traces == {"4bf92f3577b34da6a3ce929d0e0e4736"} and all(s.traceparent for s in fake.seen)


def test_urllib3_debug_lines_never_show_the_patient_id(fake, capsys):
    """A patient id leaked in part through urllib3's DEBUG lines (the redaction stopped at `_`); every
    character of it is hashed now, whatever logs the line."""
    fake.routes["/fhir/*"] = answer(200, bundle())
    root_level = logging.getLogger().level
    handler = logs.configure_root("DEBUG")
    urllib3_log = logging.getLogger("urllib3")
    previous = urllib3_log.level
    urllib3_log.setLevel(logging.DEBUG)
    try:
        client = fhir_client_factory(Settings())(fake.base, TOKEN)
        client.get("Condition?patient=p_secret-9.x&_count=100")
        client.get("Patient/p_secret-9.x")
    finally:
        urllib3_log.setLevel(previous)
        handler.setLevel("INFO")
        logging.getLogger().setLevel(root_level)
    err = capsys.readouterr().err
    assert "Condition?patient=" in err and "/fhir/Patient/" in err  # the lines were written
    assert "secret" not in err and TOKEN not in err
