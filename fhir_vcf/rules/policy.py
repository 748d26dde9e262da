"""Coverage policies as data: every threshold, window, level range and code list, with its source.

A policy file (YAML or JSON) is parsed into a frozen `Policy`. The rules read only the `Policy`
object, never a policy id, so a site can ship another payer's policy by writing a file. Every
clinical number is a *cited* item, `{value: ..., source: "..."}`, so that `Policy.to_dict()` (served
by the REST API) shows analysts exactly what runs and where each number comes from. A bare value is
accepted too and inherits the `source` of its section.

Bad files raise `PolicyError` naming the file and the offending key.

Schema (YAML or JSON; unknown keys are errors; a "cited" item is `{value, source, note?}` or a bare
value inheriting the section's `source`):

    id: cms-lcd-pva                  # a word; what --policy / ?policy= name
    title, version?, description?
    sources: [{id, citation, url?}]  # the documents the `source` strings refer to
    fracture_age:      {enabled, title, source, acute_below_days, max_days}              # I1
    level:             {enabled, title, source, first, last,
                        review_first?, review_last?, review_flag?}                       # I2
    acuity:            {enabled, title, source}                                          # I3
    symptoms:          {enabled, title, source, hospitalized_min_score (null: no inpatient
                        path), min_score, require_nsm, nsm_min_days (null: none),
                        require_trend, supporting_min, height_loss_above_percent,
                        rdq_above, malignant_min_score}                                  # I4
    continuum_of_care: {enabled, title, source, require_dxa, require_program}            # I5
    coding:            {enabled, title, source, osteoporotic_codes, icd_checks,
                        review_seventh, malignant_route, malignant_fracture_codes,
                        malignant_neoplasm_codes, traumatic_prefixes,
                        collapsed_nec_prefixes, deleted_cpt}                             # S1
    technique:         {source, kyphoplasty_height_loss_above_percent, vertebra_plana_flag?}
    exclusions:        {X1: {enabled, kind: absolute|relative, title, source,
                             check: fact|level-count|coagulation (default fact),
                             fact: <FractureFacts field>, limit?, waived_for_codes?}, ...}
"""

from __future__ import annotations

import functools
import json
import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from fhir_vcf.errors import PolicyError
from fhir_vcf.levels import is_level

BUILTIN_DIR = Path(__file__).parent / "policies"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader when libyaml is there; both are safe


@dataclass(frozen=True)
class Cited:
    """One policy value and the text it comes from (e.g. "LCD L34106, inclusion 1a")."""

    value: Any
    source: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": _jsonable(self.value), "source": self.source}
        if self.note:
            out["note"] = self.note
        return out


def _kind(kind: str) -> dict[str, str]:
    """Field metadata: the policy-file type of a field.

    kinds: bool, int, str, level, codes (list of strings), cited:<int|float|bool|level|codes> with a
    trailing "?" when null is allowed (e.g. "no minimum NSM duration").
    """
    return {"kind": kind}


@dataclass(frozen=True)
class Source:
    id: str
    citation: str
    url: str = field(default="", metadata=_kind("str"))


@dataclass(frozen=True)
class Criterion:
    """What every criterion section has: whether it applies, its title, and its citation."""

    enabled: bool = field(metadata=_kind("bool"))
    title: str = field(metadata=_kind("str"))
    source: str = field(metadata=_kind("str"))


@dataclass(frozen=True)
class FractureAgeRule(Criterion):
    """I1: days from symptom onset to the as-of date."""

    acute_below_days: Cited = field(metadata=_kind("cited:int"))  # acute: d < this
    max_days: Cited = field(metadata=_kind("cited:int"))  # subacute up to and including this; beyond: chronic


@dataclass(frozen=True)
class LevelRule(Criterion):
    """I2: the levels the policy covers, and a sub-range that only earns a flag."""

    first: Cited = field(metadata=_kind("cited:level"))
    last: Cited = field(metadata=_kind("cited:level"))
    review_first: Cited | None = field(default=None, metadata=_kind("cited:level?"))
    review_last: Cited | None = field(default=None, metadata=_kind("cited:level?"))
    review_flag: str = field(default="", metadata=_kind("str"))


@dataclass(frozen=True)
class AcuityRule(Criterion):
    """I3: acuity shown by advanced imaging (MRI edema / bone-scan uptake)."""


@dataclass(frozen=True)
class SymptomRule(Criterion):
    """I4: pain despite non-surgical management (NSM), on the hospitalized or outpatient path."""

    # null: no separate hospitalized path; every patient goes the outpatient way.
    hospitalized_min_score: Cited = field(metadata=_kind("cited:float?"))
    min_score: Cited = field(metadata=_kind("cited:float"))
    require_nsm: Cited = field(metadata=_kind("cited:bool"))
    nsm_min_days: Cited = field(metadata=_kind("cited:int?"))
    # true: worsening pain, or stable pain with `supporting_min` of A-D, is needed as well.
    require_trend: Cited = field(metadata=_kind("cited:bool"))
    supporting_min: Cited = field(metadata=_kind("cited:int"))
    height_loss_above_percent: Cited = field(metadata=_kind("cited:float"))
    rdq_above: Cited = field(metadata=_kind("cited:int"))
    # The malignant route asks only for a painful lesion unresponsive to medical therapy.
    malignant_min_score: Cited = field(metadata=_kind("cited:float"))


@dataclass(frozen=True)
class ContinuumRule(Criterion):
    """I5: referral for bone-density evaluation and an osteoporosis treatment/education program."""

    require_dxa: Cited = field(metadata=_kind("cited:bool"))
    require_program: Cited = field(metadata=_kind("cited:bool"))


EXCLUSION_CHECKS = ("fact", "level-count", "coagulation")


@dataclass(frozen=True)
class ExclusionRule:
    """One exclusion. `check` says how it is judged:

    fact:        the FractureFacts field named by `fact` (PRESENT = the exclusion applies);
    level-count: more than `limit` levels in one procedure (waivable on the malignant route for the
                 neoplasm codes in `waived_for_codes`, e.g. myeloma C90.0);
    coagulation: the fact named by `fact` (a coded coagulopathy) or the latest INR above `limit`.
    """

    id: str
    enabled: bool = field(metadata=_kind("bool"))
    kind: str = field(metadata=_kind("str"))  # absolute | relative
    title: str = field(metadata=_kind("str"))
    source: str = field(metadata=_kind("str"))
    check: str = field(default="fact", metadata=_kind("str"))
    fact: str = field(default="", metadata=_kind("str"))
    limit: Cited | None = field(default=None, metadata=_kind("cited:float?"))
    waived_for_codes: Cited | None = field(default=None, metadata=_kind("cited:codes?"))


@dataclass(frozen=True)
class CodingRule(Criterion):
    """S1: which coding route the fracture takes (osteoporotic, malignant, review, traumatic)."""

    osteoporotic_codes: Cited = field(metadata=_kind("cited:codes"))
    # ICD-10-CM checks (7th character, M48.5- with osteoporosis); off for non-US policies.
    icd_checks: Cited = field(metadata=_kind("cited:bool"))
    review_seventh: Cited = field(metadata=_kind("cited:codes"))
    malignant_route: Cited = field(metadata=_kind("cited:bool"))
    malignant_fracture_codes: Cited = field(metadata=_kind("cited:codes"))
    malignant_neoplasm_codes: Cited = field(metadata=_kind("cited:codes"))
    traumatic_prefixes: Cited = field(metadata=_kind("cited:codes"))
    collapsed_nec_prefixes: Cited = field(metadata=_kind("cited:codes"))
    deleted_cpt: Cited = field(metadata=_kind("cited:codes"))


@dataclass(frozen=True)
class TechniqueRule:
    """Technique advice (not coverage): when kyphoplasty's height restoration is worth it."""

    source: str = field(metadata=_kind("str"))
    kyphoplasty_height_loss_above_percent: Cited = field(metadata=_kind("cited:float"))
    vertebra_plana_flag: str = field(default="", metadata=_kind("str"))


_SECTIONS: dict[str, type] = {
    "fracture_age": FractureAgeRule,
    "level": LevelRule,
    "acuity": AcuityRule,
    "symptoms": SymptomRule,
    "continuum_of_care": ContinuumRule,
    "coding": CodingRule,
    "technique": TechniqueRule,
}
_TOP_KEYS = {"id", "title", "version", "description", "sources", "exclusions", *_SECTIONS}
_FACT_FIELDS: set[str] = set()  # filled lazily from FractureFacts (import kept local: base module)


@dataclass(frozen=True)
class Policy:
    id: str
    title: str
    version: str
    description: str
    sources: tuple[Source, ...]
    fracture_age: FractureAgeRule
    level: LevelRule
    acuity: AcuityRule
    symptoms: SymptomRule
    continuum_of_care: ContinuumRule
    coding: CodingRule
    technique: TechniqueRule
    exclusions: tuple[ExclusionRule, ...]
    file: str = field(default="", compare=False)

    def source_for(self, text: str) -> Source | None:
        """The listed source a criterion's `source` text cites: the `sources[].id` named first in it.

        "LCD L34106, inclusion 1a" cites LCD; "A56572: level limit waived" cites A56572. So each
        criterion links to the published text behind it (its `url`) without repeating the URL.
        """
        found = [(m.start(), s) for s in self.sources if (m := _word(s.id).search(text or ""))]
        return min(found, key=lambda pair: pair[0])[1] if found else None

    def exclusion(self, check: str) -> ExclusionRule | None:
        """The first enabled exclusion judged by `check` (e.g. "level-count"), if the policy has one."""
        return next((x for x in self.exclusions if x.enabled and x.check == check), None)

    @property
    def max_levels(self) -> int | None:
        rule = self.exclusion("level-count")
        return int(rule.limit.value) if rule and rule.limit and rule.limit.value is not None else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view of everything the rules read (what the REST API serves)."""
        out: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "version": self.version,
            "description": self.description,
            "sources": [_section_dict(s) for s in self.sources],
        }
        for name in _SECTIONS:
            out[_camel(name)] = _section_dict(getattr(self, name))
        out["exclusions"] = [_section_dict(x) for x in self.exclusions]
        return out


# --------------------------------------------------------------------------- loading


def load_policies(extra_files: Iterable[str] = ()) -> dict[str, Policy]:
    """The built-in policies (rules/policies/*.yaml|json) plus `extra_files`, by id.

    An extra file with the id of a built-in replaces it (a site may tighten the default); two extra
    files with one id are an error, since one of them would silently lose.
    """
    policies: dict[str, Policy] = {}
    for path in sorted(BUILTIN_DIR.glob("*.yaml")) + sorted(BUILTIN_DIR.glob("*.json")):
        stat = path.stat()
        policy = _parse_cached(str(path), stat.st_mtime_ns, stat.st_size)
        policies[policy.id] = policy
    seen: dict[str, str] = {}
    for name in extra_files:
        policy = parse_policy_file(Path(name))
        if policy.id in seen:
            raise PolicyError(f"{name}: policy id {policy.id!r} is also defined in {seen[policy.id]}")
        seen[policy.id] = name
        policies[policy.id] = policy
    return policies


def load_policy(id_or_path: str, known: Mapping[str, Policy]) -> Policy:
    """A known policy by id, else a policy file by path."""
    if id_or_path in known:
        return known[id_or_path]
    path = Path(id_or_path)
    if path.suffix.lower() in {".yaml", ".yml", ".json"} or path.exists():
        return parse_policy_file(path)
    raise PolicyError(f"unknown policy {id_or_path!r}; known: {', '.join(sorted(known))} (or give a .yaml/.json path)")


@functools.lru_cache(maxsize=64)
def _parse_cached(path: str, mtime_ns: int, size: int) -> Policy:
    """Built-in files parsed once per version of the file (apps are built often in tests; a Policy is frozen)."""
    return parse_policy_file(Path(path))


def parse_policy_file(path: Path) -> Policy:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{name}: no such policy file") from None
    except OSError as exc:
        raise PolicyError(f"{name}: cannot read policy file ({exc.strerror})") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.load(text, Loader=_LOADER)
    except (ValueError, yaml.YAMLError) as exc:
        raise PolicyError(f"{name}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}") from None
    return policy_from_dict(data, file=name)


def policy_from_dict(data: Any, *, file: str = "<policy>") -> Policy:
    if not isinstance(data, dict):
        raise PolicyError(f"{file}: a policy must be a mapping at the top level")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise PolicyError(f"{file}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_TOP_KEYS))})")
    for key in ("id", "title", *_SECTIONS, "exclusions", "sources"):
        if key not in data:
            raise PolicyError(f"{file}: missing key {key!r}")
    policy_id = data["id"]
    if not isinstance(policy_id, str) or not policy_id.strip() or any(c.isspace() for c in policy_id):
        raise PolicyError(f"{file}: key 'id' must be a non-empty word, e.g. cms-lcd-pva")
    sections = {name: _build(cls, data[name], name, file) for name, cls in _SECTIONS.items()}
    sources = data["sources"]
    if not isinstance(sources, list) or not sources:
        raise PolicyError(f"{file}: key 'sources' must be a non-empty list of {{id, citation}}")
    source_objs = tuple(_build(Source, s, f"sources[{i}]", file) for i, s in enumerate(sources))
    exclusions = data["exclusions"]
    if not isinstance(exclusions, dict):
        raise PolicyError(f"{file}: key 'exclusions' must map exclusion ids (X1, ...) to their rules")
    excl = tuple(_build(ExclusionRule, dict(raw, id=xid) if isinstance(raw, dict) else raw, f"exclusions.{xid}", file)
                 for xid, raw in exclusions.items())
    for x in excl:
        _check_exclusion(x, file)
    policy = Policy(
        id=policy_id,
        title=_require_str(data["title"], "title", file),
        version=str(data.get("version", "")),
        description=str(data.get("description", "")),
        sources=source_objs,
        exclusions=excl,
        file=file,
        **sections,
    )
    _check_levels(policy, file)
    return policy


# --------------------------------------------------------------------------- validation helpers


def _build(cls: type, raw: Any, where: str, file: str) -> Any:
    if not isinstance(raw, dict):
        raise PolicyError(f"{file}: key {where!r} must be a mapping")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise PolicyError(f"{file}: unknown key '{where}.{unknown[0]}'")
    section_source = raw.get("source", "")
    values: dict[str, Any] = {}
    for f in fields(cls):
        key = f"{where}.{f.name}"
        if f.name not in raw:
            if f.default is MISSING and f.default_factory is MISSING:
                raise PolicyError(f"{file}: missing key {key!r}")
            continue
        kind = f.metadata.get("kind", "str")
        values[f.name] = _convert(raw[f.name], kind, key, file, section_source)
    return cls(**values)


def _convert(raw: Any, kind: str, key: str, file: str, section_source: str) -> Any:
    nullable = kind.endswith("?")
    kind = kind.rstrip("?")
    if kind.startswith("cited:"):
        inner = kind.split(":", 1)[1]
        if isinstance(raw, dict):
            extra = sorted(set(raw) - {"value", "source", "note"})
            if extra:
                raise PolicyError(f"{file}: unknown key '{key}.{extra[0]}' (a cited item has value, source, note)")
            if "value" not in raw:
                raise PolicyError(f"{file}: missing key '{key}.value'")
            value, source, note = raw["value"], raw.get("source", section_source), raw.get("note", "")
        else:
            value, source, note = raw, section_source, ""
        if not isinstance(source, str) or not source.strip():
            raise PolicyError(f"{file}: key '{key}' needs a 'source' (the text this value comes from)")
        if value is None and not nullable:
            raise PolicyError(f"{file}: key '{key}' must not be null")
        converted = None if value is None else _convert(value, inner, key, file, section_source)
        return Cited(converted, source, str(note))
    if raw is None:
        if nullable:
            return None
        raise PolicyError(f"{file}: key '{key}' must not be null")
    if kind == "bool":
        if not isinstance(raw, bool):
            raise PolicyError(f"{file}: key '{key}' must be true or false, got {raw!r}")
        return raw
    if kind in {"int", "float"}:
        if isinstance(raw, bool) or not isinstance(raw, int | float) or (kind == "int" and raw != int(raw)):
            raise PolicyError(f"{file}: key '{key}' must be a {'whole ' if kind == 'int' else ''}number, got {raw!r}")
        if raw < 0:
            raise PolicyError(f"{file}: key '{key}' must not be negative, got {raw!r}")
        return int(raw) if kind == "int" else float(raw)
    if kind == "str":
        if not isinstance(raw, str):
            raise PolicyError(f"{file}: key '{key}' must be a string, got {raw!r}")
        return raw
    if kind == "level":
        if not isinstance(raw, str) or not is_level(raw):
            raise PolicyError(f"{file}: key '{key}' must be a vertebral level such as T1 or L5, got {raw!r}")
        return raw
    if kind == "codes":
        if not isinstance(raw, list) or not all(isinstance(c, str | int) and str(c).strip() for c in raw):
            raise PolicyError(f"{file}: key '{key}' must be a list of codes, got {raw!r}")
        return tuple(str(c).strip() for c in raw)
    raise PolicyError(f"{file}: key '{key}' has an unsupported type {kind}")  # pragma: no cover


def _require_str(value: Any, key: str, file: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PolicyError(f"{file}: key {key!r} must be a non-empty string")
    return value


def _fact_fields() -> set[str]:
    if not _FACT_FIELDS:
        from fhir_vcf.facts import FractureFacts

        hints = typing.get_type_hints(FractureFacts)
        # Only single facts (Fact[...]), not per-level dicts or tuples of them.
        _FACT_FIELDS.update(name for name, hint in hints.items() if str(hint).startswith("fhir_vcf.facts.Fact["))
    return _FACT_FIELDS


def _check_exclusion(x: ExclusionRule, file: str) -> None:
    where = f"exclusions.{x.id}"
    if x.kind not in {"absolute", "relative"}:
        raise PolicyError(f"{file}: key '{where}.kind' must be absolute or relative, got {x.kind!r}")
    if x.check not in EXCLUSION_CHECKS:
        raise PolicyError(f"{file}: key '{where}.check' must be one of {', '.join(EXCLUSION_CHECKS)}, got {x.check!r}")
    if x.check in {"fact", "coagulation"} and x.fact not in _fact_fields():
        raise PolicyError(f"{file}: key '{where}.fact' must name a fracture fact (e.g. infection), got {x.fact!r}")
    if x.check in {"level-count", "coagulation"} and (x.limit is None or x.limit.value is None):
        raise PolicyError(f"{file}: key '{where}.limit' is required for check {x.check}")


def _check_levels(policy: Policy, file: str) -> None:
    from fhir_vcf.levels import position

    age = policy.fracture_age
    if age.acute_below_days.value > age.max_days.value + 1:
        raise PolicyError(f"{file}: key 'fracture_age.acute_below_days' ({age.acute_below_days.value}) is beyond "
                          f"'fracture_age.max_days' ({age.max_days.value})")
    rule = policy.level
    if position(rule.first.value) > position(rule.last.value):
        raise PolicyError(f"{file}: key 'level.first' ({rule.first.value}) is below 'level.last' ({rule.last.value})")
    if (rule.review_first is None) != (rule.review_last is None):
        raise PolicyError(f"{file}: keys 'level.review_first' and 'level.review_last' go together")


@functools.lru_cache(maxsize=256)
def _word(source_id: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w-]){re.escape(source_id)}(?![\w-])")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _section_dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value is None or value == "":
            continue
        out[_camel(f.name)] = value.to_dict() if isinstance(value, Cited) else _jsonable(value)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value
