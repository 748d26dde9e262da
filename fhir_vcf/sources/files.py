"""Bundle files and directories of them, read into PatientRecords with clear input errors."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from fhir_vcf import collector
from fhir_vcf.errors import InputError
from fhir_vcf.record import PatientRecord, load_document

# A JSON escape of NUL: text that no FHIR string may hold (FHIR strings exclude control characters)
# and that PostgreSQL cannot store, which orjson accepts. (Lone surrogates, numbers past a double,
# NaN and Infinity orjson refuses itself.)
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_TOO_DEEP = re.compile(r"(?i)recursion|depth|nest")


def _bad_text(value: Any) -> str | None:
    """What is wrong with a string somewhere in `value` (a lone surrogate, a NUL), else None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "a NUL character (\\u0000)"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "an unpaired UTF-16 surrogate (\\ud800-\\udfff), which is not Unicode text"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _why_not(text: str | bytes, refusal: str, source: str) -> InputError:
    """The error for a document orjson refused, in the standard library's words for a syntax error
    (the same message as always: "Expecting ',' delimiter at line 3 column 5"), else orjson's reason.
    Only on the error path, so its cost does not matter."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return InputError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", source=source)
    except UnicodeDecodeError:
        return InputError("invalid JSON: the file is not UTF-8 text", source=source)
    except RecursionError:  # thousands of nested arrays: bad input, not a failure of ours
        return InputError("invalid JSON: nested too deeply to be a FHIR document", source=source)
    except ValueError:  # int("9" * 5000): Python's digit limit
        return InputError("invalid JSON: a number too large", source=source)
    if _TOO_DEEP.search(refusal):  # orjson stops at 1024 levels
        return InputError("invalid JSON: nested too deeply to be a FHIR document", source=source)
    if "surrogate" in refusal or "utf-8" in refusal.lower():
        return InputError("invalid JSON: a string holds an unpaired UTF-16 surrogate (\\ud800-\\udfff), which is "
                          "not Unicode text", source=source)
    if "infinity" in refusal or "number" in refusal:
        return InputError("invalid JSON: a number too large", source=source)
    return InputError(f"invalid JSON: {refusal}", source=source)  # NaN, Infinity: not JSON


def parse_json(text: str | bytes, *, source: str) -> Any:
    """Parse JSON (orjson: half the time of the standard library on an 80 kB hook request,
    benchmarks/bench_serving.py), or raise an InputError that says where the syntax broke.

    Also refused, because every later step would fail on them in its own way (a 500, an audit row
    not written, a database error reported as "retry later"): numbers past a double (a 5000-digit
    integer, a float overflowing to infinity; `NaN`/`Infinity`, which are not JSON), and strings
    holding a lone surrogate or a NUL.
    """
    if not text.strip():
        raise InputError("invalid JSON: the file is empty", source=source)
    if isinstance(text, bytes) and text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]  # a UTF-8 byte order mark, as editors write it (RFC 8259 lets a parser skip it)
    try:
        with collector.paused():  # no cycles in parsed JSON: a 10,000-resource file 92 -> 66 ms
            document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _why_not(text, exc.msg, source) from None
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    start = raw.find(b"\\")  # every suspect escape begins with a backslash: most bodies have none, or few
    if start >= 0 and _SUSPECT_ESCAPE.search(raw, start):
        problem = _bad_text(document)
        if problem:
            raise InputError(f"invalid text: a string holds {problem}", source=source)
    return document


def bundle_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files named, with each directory expanded to its *.json files (sorted, not recursive)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.glob("*.json") if p.is_file() and p.name != "expected.json"))
        else:
            files.append(path)
    return files


def load_file(path: str | Path) -> list[PatientRecord]:
    """One record per patient in the file; an InputError naming the file when it cannot be read."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError("no such file", source=source) from None
    except OSError as exc:
        raise InputError(f"cannot read the file ({exc.strerror})", source=source) from None
    return load_document(parse_json(data, source=source), source=source)
