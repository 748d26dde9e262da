"""Bundle files and directories of them, read into PatientRecords with clear input errors."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fhir_vcf.errors import InputError
from fhir_vcf.record import PatientRecord, load_document

# A JSON escape of a UTF-16 surrogate, or of NUL: the only ways text that no FHIR string may hold
# (a lone surrogate is not Unicode; FHIR strings exclude control characters) gets through a parser.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:[dD][89a-fA-F]|0000)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number too large for a FHIR decimal")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


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


def parse_json(text: str | bytes, *, source: str) -> Any:
    """Parse JSON, or raise an InputError that says where the syntax broke.

    Also refused, because every later step would fail on them in its own way (a 500, an audit row
    not written, a database error reported as "retry later"): numbers Python cannot hold (more than
    4300 digits, or a float overflowing to infinity; `NaN`/`Infinity`, which are not JSON), and
    strings holding a lone surrogate or a NUL.
    """
    if not text.strip():
        raise InputError("invalid JSON: the file is empty", source=source)
    try:
        document = json.loads(text, parse_float=_finite, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", source=source) from None
    except UnicodeDecodeError:
        raise InputError("invalid JSON: the file is not UTF-8 text", source=source) from None
    except RecursionError:  # thousands of nested arrays: bad input, not a failure of ours
        raise InputError("invalid JSON: nested too deeply to be a FHIR document", source=source) from None
    except ValueError as exc:  # int("9" * 5000): Python's digit limit, or a float out of range
        reason = "a number too large" if "digit" in str(exc) or "number" in str(exc) else str(exc)
        raise InputError(f"invalid JSON: {reason}", source=source) from None
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if _SUSPECT_ESCAPE.search(raw):
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
