"""Bulk Data NDJSON: the files of a `$export` (one resource per line), read in chunks that remember
their line numbers, so that every malformed line can be reported as `file:line` and the run goes on.

A Bulk export holds one file (or several) per resource type (Bulk Data IG, "Response - Complete
Status": "Each file SHALL contain resources of only one type"). Files of types the mappers never read
(Practitioner, Immunization, ...) are recognised by name and skipped without being parsed; a file
whose name says nothing is read line by line like any other.

The patient a resource belongs to is read from the same elements `fhir_vcf.record.load_resources`
files it by (`subject`, then `patient`; a Patient is its own), in the reference forms Bulk exports use
(`Patient/1`, `https://ehr/fhir/Patient/1`, `Patient/1/_history/2`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from fhir_vcf.errors import InputError
from fhir_vcf.record import USED_TYPES, relative_reference

NDJSON_SUFFIXES = (".ndjson", ".jsonl")
# Where a resource points at its patient: the elements `record.load_resources` reads, in its order.
PATIENT_ELEMENTS = ("subject", "patient")
DEFAULT_CHUNK_BYTES = 16 * 1024 * 1024
_TYPE_NAME = re.compile(r"[A-Z][A-Za-z]+")


@dataclass(frozen=True, order=True)
class Chunk:
    """A run of whole lines of one file: bytes [offset, offset + length), the first being line `first_line`."""

    path: str
    offset: int
    length: int
    first_line: int

    @property
    def name(self) -> str:
        return Path(self.path).name


@dataclass(frozen=True)
class BadLine:
    """A line that could not be read as a resource: where it is and why (never its content)."""

    file: str
    line: int
    problem: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.problem}"


def ndjson_files(folder: str | Path) -> list[Path]:
    """The NDJSON files of an export folder (not recursive), sorted by name."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError("not a folder of Bulk Data NDJSON files", source=str(folder))
    return sorted(p for p in root.iterdir() if p.is_file() and p.name.endswith(NDJSON_SUFFIXES))


def type_from_name(path: str | Path) -> str | None:
    """The resource type a file's name announces ("Observation.ndjson", "Observation.002.ndjson",
    "Observation_1.ndjson", "1.Observation.ndjson"), or None when the name names no type."""
    for part in re.split(r"[._\-]", Path(path).name):
        if _TYPE_NAME.fullmatch(part) and part not in {"Ndjson", "Jsonl"}:
            return part
    return None


def is_unused(path: str | Path) -> bool:
    """A file whose name says it holds a type the evaluation never reads: skip it unread."""
    rtype = type_from_name(path)
    return rtype is not None and rtype not in USED_TYPES and rtype[0].isupper() and _known_type(rtype)


def _known_type(rtype: str) -> bool:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        get_fhir_model_class(rtype)
    except (KeyError, ValueError, TypeError):
        return False
    return True


def plan_chunks(files: Iterable[str | Path], target_bytes: int = DEFAULT_CHUNK_BYTES) -> list[Chunk]:
    """Cut the files into chunks of about `target_bytes` on line boundaries, counting lines as it goes.

    One pass of plain reads (no parsing), so that readers in other processes or on other machines
    can start at a chunk and still name each line by its number.
    """
    chunks: list[Chunk] = []
    for file in files:
        path = str(file)
        with open(path, "rb") as fh:
            offset, line = 0, 1
            while True:
                block = fh.read(target_bytes)
                if not block:
                    break
                tail = b"" if block.endswith(b"\n") else fh.readline()
                block += tail
                chunks.append(Chunk(path, offset, len(block), line))
                offset += len(block)
                line += block.count(b"\n")
    return chunks


def read_chunk(chunk: Chunk) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) for each non-blank line of a chunk."""
    with open(chunk.path, "rb") as fh:
        fh.seek(chunk.offset)
        data = fh.read(chunk.length)
    for i, raw in enumerate(data.split(b"\n")):
        if raw.strip():
            yield chunk.first_line + i, raw


_LONG_DIGITS = re.compile(r"\d{19}")
# For bytes, the same test as `rb"\d{19}"` (ASCII digits only) without the regex engine: every digit
# becomes "0", every other byte a space, and a run of 19 zeros is looked for (1.4 vs 12.6 µs on a
# realistic 570-byte line, as much as orjson's parse itself).
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_NINETEEN_DIGITS = b"0" * 19


def has_long_digits(raw: bytes | str) -> bool:
    """Whether the text holds a run of 19 digits (a possible integer past 64 bits)."""
    if isinstance(raw, bytes):
        return _NINETEEN_DIGITS in raw.translate(_DIGITS_AS_ZEROS)
    return _LONG_DIGITS.search(raw) is not None


def parse_line(raw: bytes | str) -> dict[str, Any]:
    """One NDJSON line as a resource object, or InputError saying what is wrong with it.

    orjson first (a third of the standard library's time on realistic lines: 45 vs 135 ms for
    20,000, `benchmarks/bench_record_cost.py`'s population); a line it refuses (bad syntax, but also
    NaN, a huge integer, a lone surrogate, which the standard library reads) is read again by the
    standard library, so that what is accepted, and each error message, are as they always were."""
    if has_long_digits(raw):
        value = _standard_loads(raw)  # orjson reads an integer past 64 bits as a float; json keeps it whole
    else:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = _standard_loads(raw)
    if not isinstance(value, dict):
        raise InputError("not a FHIR resource: expected a JSON object")
    rtype = value.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise InputError("not a FHIR resource: no resourceType")
    return value


def _standard_loads(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    except UnicodeDecodeError:
        raise InputError("invalid JSON: the line is not UTF-8 text") from None
    except RecursionError:
        raise InputError("invalid JSON: nested too deeply to be a FHIR resource") from None


def resource_key(resource: Mapping[str, Any]) -> str | None:
    """"Type/id", the form references resolve to; None when the resource has no id."""
    rid = resource.get("id")
    return f"{resource['resourceType']}/{rid}" if isinstance(rid, str) and rid else None


def patient_of(resource: Mapping[str, Any]) -> str | None:
    """"Patient/id" of the patient a resource belongs to, or None when it names none (a Medication)."""
    if resource.get("resourceType") == "Patient":
        return resource_key(resource)
    for element in PATIENT_ELEMENTS:
        pointer = resource.get(element)
        value = pointer.get("reference") if isinstance(pointer, Mapping) else None
        if isinstance(value, str) and value:
            ref = relative_reference(value)
            return ref if ref.startswith("Patient/") else None
    return None


def references_in(value: Any) -> Iterator[str]:
    """Every `reference` string inside a resource, relative form ("Medication/m1")."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("reference")
            if isinstance(ref, str):
                yield relative_reference(ref)
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, dict | list))
