"""The loading layer's shortcuts (issue 11) give what the long way gives: the escape check started at
the first backslash, the shared collector pause, reports without attachments."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from fhir_vcf import collector, record
from fhir_vcf.elements import read_resource
from fhir_vcf.errors import InputError
from fhir_vcf.sources import files


class _Searches:
    """`_SUSPECT_ESCAPE` with each search's start recorded."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.pattern = files._SUSPECT_ESCAPE

    def search(self, raw: bytes, start: int = 0) -> Any:
        self.starts.append(start)
        return self.pattern.search(raw, start)


def test_the_escape_check_starts_at_the_first_backslash_and_still_finds_what_follows(monkeypatch):
    searches = _Searches()
    monkeypatch.setattr(files, "_SUSPECT_ESCAPE", searches)
    plain = b'{"resourceType": "Patient", "id": "p"}'
    assert files.parse_json(plain, source="x") == {"resourceType": "Patient", "id": "p"}
    assert searches.starts == []  # no backslash: nothing to look for
    body = '{"a": "line\\nbreak", "b": "x\\u0000"}'
    with pytest.raises(InputError, match="NUL"):
        files.parse_json(body, source="x")
    with pytest.raises(InputError, match="NUL"):
        files.parse_json(body.encode(), source="x")
    assert searches.starts == [body.index("\\")] * 2
    assert files.parse_json(b'{"a": "\\\\u0000"}', source="x") == {"a": "\\u0000"}  # an escaped backslash


def test_paused_is_one_shared_context_that_nests_and_gives_the_setting_back():
    assert collector.paused() is collector.paused()
    assert gc.isenabled()
    try:
        with collector.paused():
            with collector.paused():
                assert not gc.isenabled()
            assert not gc.isenabled()  # the outer pause still holds
            raise KeyError("x")
    except KeyError:
        pass
    assert gc.isenabled()


def test_a_report_without_attachments_lists_none_without_looking(monkeypatch):
    report = read_resource({"resourceType": "DiagnosticReport", "id": "r", "status": "final",
                            "code": {"text": "CT"}})

    def refuse(resource: Any) -> Any:
        raise AssertionError("looked")

    monkeypatch.setattr(record, "attachments", refuse)
    assert record.attachment_skips(report) == []
    document = read_resource({"resourceType": "DocumentReference", "id": "d", "status": "current",
                              "content": [{"attachment": {"contentType": "application/pdf", "url": "x"}}]})
    monkeypatch.undo()
    assert record.attachment_skips(document) == [record.UNSUPPORTED_ATTACHMENT]
    assert record.attachments(report) == []
