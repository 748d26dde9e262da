"""The collector pause around reading a record gives the caller's setting back (issue 11)."""

from __future__ import annotations

import gc
import threading

from fhir_vcf import collector


def test_paused_restores_an_enabled_collector_even_after_an_error():
    assert gc.isenabled()
    try:
        with collector.paused():
            assert not gc.isenabled()
            raise ValueError("boom")
    except ValueError:
        pass
    assert gc.isenabled()


def test_a_caller_who_disabled_the_collector_keeps_it_disabled():
    gc.disable()
    try:
        with collector.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_comes_back_when_the_last_of_several_threads_is_done():
    inside, release = threading.Barrier(3), threading.Event()

    def judge() -> None:
        with collector.paused():
            inside.wait()
            release.wait()

    first = threading.Thread(target=judge)
    second = threading.Thread(target=judge)
    first.start(), second.start()
    inside.wait()
    assert not gc.isenabled()
    with collector.paused():  # nested in this thread too
        pass
    assert not gc.isenabled()  # two threads still judging
    release.set()
    first.join(), second.join()
    assert gc.isenabled()


def _bundle_bytes(entries: int) -> bytes:
    import json

    resources = [{"resourceType": "Patient", "id": "p1"}] + [
        {"resourceType": "Observation", "id": f"o{i}", "status": "final", "subject": {"reference": "Patient/p1"},
         "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}, "effectiveDateTime": "2025-01-02",
         "valueQuantity": {"value": 70, "unit": "/min"}}
        for i in range(entries)
    ]
    entry = [{"fullUrl": f"urn:uuid:{i}", "resource": r} for i, r in enumerate(resources)]
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entry}).encode()


def _collections_during(work) -> int:
    started = []

    def count(phase: str, _info: dict) -> None:
        if phase == "start":
            started.append(phase)

    gc.callbacks.append(count)
    try:
        work()
    finally:
        gc.callbacks.remove(count)
    return len(started)


def test_reading_a_parsed_document_into_records_runs_no_collection():
    """Listing a Bundle's entries allocates a tuple per entry while the whole parsed document is
    still young: outside the pause that set off a young collection walking the document, and on a
    10,000-resource record full ones (its cost grew 16x for 10x the resources)."""
    from fhir_vcf.record import load_document
    from fhir_vcf.sources.files import parse_json

    document = parse_json(_bundle_bytes(3000), source="test")
    gc.collect()
    old = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's default, as in a CLI or a batch process
    try:
        records: list = []
        assert _collections_during(lambda: records.extend(load_document(document, source="test"))) == 0
    finally:
        gc.set_threshold(*old)
    assert len(records) == 1


def test_entering_and_leaving_a_pause_allocate_nothing_for_the_collector_to_walk():
    """What one pause made is all young when the next begins (a document parsed in one, freed in the
    next): a container allocated at either end, with the collector on, would set off a young
    collection walking all of it (a bound `__enter__`, or the lock's `__exit__` arguments)."""
    started: list[str] = []

    def count(phase: str, _info: dict) -> None:
        if phase == "start":
            started.append(phase)

    old = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's default
    gc.collect()
    gc.callbacks.append(count)
    try:
        with collector.paused():
            made = [[] for _ in range(5000)]
        with collector.paused():
            made.clear()
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*old)
    assert started == []


def test_a_document_parsed_and_read_into_records_runs_no_collection():
    """`load_document(parse_json(...))`, as `sources.files.load_file` and every caller of the two
    write it: the parsed document must not be walked between the parse's pause and the loader's,
    which frees most of it (a 10,000-resource record: a 40-60 ms collection)."""
    from fhir_vcf.record import load_document
    from fhir_vcf.sources.files import parse_json

    body = _bundle_bytes(3000)
    old = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's default, as in a CLI or a batch process
    gc.collect()
    try:
        records: list = []
        assert _collections_during(lambda: records.extend(load_document(parse_json(body, source="test"),
                                                                        source="test"))) == 0
    finally:
        gc.set_threshold(*old)
    assert len(records) == 1


def test_the_api_reads_a_posted_document_into_records_without_a_collection(monkeypatch):
    from fhir_vcf.app import create_app
    from fhir_vcf.service import api

    events: list[str] = []
    real_load = api.load_resources

    def load_and_mark(entries, *, source):
        events.append("records")
        return real_load(entries, source=source)

    def count(phase: str, _info: dict) -> None:
        if phase == "start":
            events.append("collection")

    monkeypatch.setattr(api, "load_resources", load_and_mark)
    app = create_app({"database_url": "sqlite://"})
    body = _bundle_bytes(3000)
    old = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's default, as in `fhir-vcf serve --workers 1` before warm-up
    gc.callbacks.append(count)
    try:
        with app.test_client() as client:
            gc.collect()
            events.clear()
            answer = client.post("/api/v1/evaluations?asOf=2025-06-30", data=body, content_type="application/fhir+json")
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*old)
    assert answer.status_code == 200
    assert "records" in events
    assert "collection" not in events[: events.index("records")]  # none from the parse to the records
