"""Bundle files and directories of them, read into PatientRecords with clear input errors."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fhir_vcf.errors import InputError
from fhir_vcf.record import PatientRecord, load_document


def parse_json(text: str | bytes, *, source: str) -> Any:
    """Parse JSON, or raise an InputError that says where the syntax broke."""
    if not text.strip():
        raise InputError("invalid JSON: the file is empty", source=source)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", source=source) from None
    except UnicodeDecodeError:
        raise InputError("invalid JSON: the file is not UTF-8 text", source=source) from None
    except RecursionError:  # thousands of nested arrays: bad input, not a failure of ours
        raise InputError("invalid JSON: nested too deeply to be a FHIR document", source=source) from None


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
