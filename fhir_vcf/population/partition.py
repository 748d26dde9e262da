"""From NDJSON chunks to patients' lines, and the on-disk partition by patient of the local engine.

Reading a chunk sorts each line into one of four: a line of a patient (keyed "Patient/id" through the
resource's `subject` / `patient` reference), a shared resource (one of a used type that names no
patient, e.g. a formulary Medication, resolved later from the patients' references), a line of a
type the evaluation never reads (counted), or a malformed line (reported as file:line).

The local engine writes each patient's lines to the bucket `crc32(patient) % buckets` on disk, so
that a worker later reads one bucket, groups it by patient and judges one patient at a time: memory
holds one bucket per worker (about `bucket_bytes` of NDJSON), never the population.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fhir_vcf.errors import InputError
from fhir_vcf.record import USED_TYPES
from fhir_vcf.sources.bulk_ndjson import BadLine, Chunk, parse_line, patient_of, read_chunk, resource_key

DEFAULT_BUCKET_BYTES = 32 * 1024 * 1024


@dataclass
class ChunkItems:
    """What one chunk holds, sorted: patients' lines, shared resources, problems and counts."""

    patients: list[tuple[str, str, int, bytes]] = field(default_factory=list)  # (patient, file, line, raw)
    shared: list[tuple[str, bytes]] = field(default_factory=list)  # (reference, b"file\tline\traw")
    bad: list[BadLine] = field(default_factory=list)
    lines: int = 0
    unused: int = 0


def read_items(chunk: Chunk) -> ChunkItems:
    items = ChunkItems()
    name = chunk.name
    for number, raw in read_chunk(chunk):
        items.lines += 1
        try:
            resource = parse_line(raw)
        except InputError as exc:
            items.bad.append(BadLine(name, number, exc.message))
            continue
        if resource["resourceType"] not in USED_TYPES:
            items.unused += 1
            continue
        patient = patient_of(resource)
        if patient is not None and _clean(patient):
            items.patients.append((patient, name, number, raw))
            continue
        key = resource_key(resource)
        if key is None or not _clean(key):
            items.bad.append(BadLine(name, number, f"{resource['resourceType']} names no patient and has no id: "
                                                   "nothing can refer to it"))
            continue
        items.shared.append((key, b"%s\t%d\t%s" % (name.encode(), number, raw)))
    return items


def _clean(key: str) -> bool:
    """A key that can stand in a tab-separated work file (FHIR ids never hold tabs or newlines)."""
    return "\t" not in key and "\n" not in key and "\r" not in key


def bucket_of(patient: str, buckets: int) -> int:
    """Stable across processes and machines (unlike `hash`): the same patient, the same bucket."""
    return zlib.crc32(patient.encode()) % buckets


def scatter(chunk: Chunk, index: int, work: Path, buckets: int) -> ChunkItems:
    """Read a chunk and append its lines to the bucket files under `work` (one file per chunk and
    bucket, so that parallel writers never share a file); returns the chunk's counts and problems."""
    items = read_items(chunk)
    per_bucket: dict[int, list[bytes]] = defaultdict(list)
    for patient, file, number, raw in items.patients:
        per_bucket[bucket_of(patient, buckets)].append(b"%s\t%s\t%d\t%s\n" % (patient.encode(), file.encode(),
                                                                              number, raw))
    for bucket, lines in per_bucket.items():
        folder = work / f"b{bucket:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"c{index:06d}.tsv").write_bytes(b"".join(lines))
    if items.shared:
        shared = work / "shared"
        shared.mkdir(parents=True, exist_ok=True)
        (shared / f"c{index:06d}.tsv").write_bytes(b"".join(b"%s\t%s\n" % (k.encode(), v) for k, v in items.shared))
    items.patients = []  # written: do not send them back to the parent
    items.shared = []
    return items


def read_bucket(folder: Path) -> dict[str, list[tuple[str, int, bytes]]]:
    """The lines of one bucket grouped by patient."""
    groups: dict[str, list[tuple[str, int, bytes]]] = defaultdict(list)
    for path in sorted(folder.glob("c*.tsv")):
        for line in path.read_bytes().splitlines():
            patient, file, number, raw = line.split(b"\t", 3)
            groups[patient.decode()].append((file.decode(), int(number), raw))
    return groups


def read_shared(work: Path) -> dict[str, bytes]:
    """Shared resources by reference ("Medication/m1")."""
    shared: dict[str, bytes] = {}
    for path in sorted((work / "shared").glob("c*.tsv")):
        for line in path.read_bytes().splitlines():
            key, value = line.split(b"\t", 1)
            keep_first(shared, key.decode(), value)
    return shared


def keep_first(shared: dict[str, bytes], key: str, value: bytes) -> None:
    """A reference given twice keeps its first line by (file, line), whatever order engines see them in."""
    old = shared.get(key)
    if old is None or _position(value) < _position(old):
        shared[key] = value


def _position(value: bytes) -> tuple[bytes, int]:
    file, number, _ = value.split(b"\t", 2)
    return file, int(number)


def buckets_in(work: Path) -> Iterator[Path]:
    return iter(sorted(p for p in work.glob("b*") if p.is_dir()))
