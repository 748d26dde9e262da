"""Coverage policies as data: every threshold, window, level range and code list, with its source.

A policy file (YAML or JSON) is parsed into a frozen `Policy`. The rules read only the `Policy`
object, never a policy id, so a site can ship another payer's policy by writing a file. Every
clinical number is a *cited* item, `{value: ..., source: "..."}`, so that `Policy.to_dict()` (served
by the REST API) shows analysts exactly what runs and where each number comes from. A bare value is
accepted too and inherits the `source` of its section.

The schema is declarative: the classes below are pydantic dataclasses (frozen, unknown keys
refused), and pydantic validates a file against them. Bad files raise `PolicyError` naming the
file and the offending key (`symptoms.min_score.value: must be a number`). The same classes give
the JSON Schema policy authors can check their files with (`policy_json_schema()`: served at
`/api/v1/policies/schema`, published as `docs/policy.schema.json`).

Shape (YAML or JSON; unknown keys are errors; a "cited" item is `{value, source, note?}` or a bare
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

import dataclasses
import functools
import json
import re
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic.json_schema import SkipJsonSchema

from fhir_vcf.errors import PolicyError
from fhir_vcf.levels import ALL_LEVELS, is_level

BUILTIN_DIR = Path(__file__).parent / "policies"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader when libyaml is there; both are safe
RESERVED_IDS = frozenset({"schema"})  # `/api/v1/policies/schema` is the JSON Schema, not a policy

# Every class: frozen (the rules share one Policy between threads) and closed (a misspelt key is an
# error, not a silently ignored setting).
_CONFIG = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- value types


def _word(value: str) -> str:
    if not value.strip() or any(c.isspace() for c in value):
        raise ValueError("must be a non-empty word, e.g. cms-lcd-pva")
    if value in RESERVED_IDS:
        raise ValueError("is reserved (/api/v1/policies/schema is the JSON Schema)")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _level(value: str) -> str:
    if not is_level(value):
        raise ValueError("must be a vertebral level such as T1 or L5")
    return value


def _code(value: Any) -> Any:
    """A code may be written as a number in YAML (`- 22520`); it is kept as its text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


PolicyId = Annotated[StrictStr, AfterValidator(_word), Field(pattern=r"^\S+$")]
Text = Annotated[StrictStr, AfterValidator(_not_blank), Field(min_length=1)]
Count = Annotated[StrictInt, Field(ge=0)]
Number = Annotated[float, Strict(), Field(ge=0)]  # an int is a number too; a bool is not
# The JSON Schema pattern says the same as levels.is_level (tests/test_policy.py checks both agree).
LEVEL_PATTERN = r"^(C[1-7]|T([1-9]|1[0-2])|L[1-5]|S[1-5])$"
Level = Annotated[StrictStr, AfterValidator(_level), Field(json_schema_extra={"pattern": LEVEL_PATTERN})]
Code = Annotated[
    StrictStr, BeforeValidator(_code, json_schema_input_type=str | int), AfterValidator(str.strip),
    AfterValidator(_not_blank),
]
Codes = tuple[Code, ...]


# --------------------------------------------------------------------------- cited values


@dataclass(frozen=True, config=_CONFIG)
class Cited:
    """One policy value and the text it comes from (e.g. "LCD L34106, inclusion 1a")."""

    value: Any
    source: Annotated[Text, Field(description="The text this value comes from, e.g. 'LCD L34106, inclusion 1a'.")]
    note: StrictStr = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": _jsonable(self.value), "source": self.source}
        if self.note:
            out["note"] = self.note
        return out


# One class per kind of value, so that the JSON Schema names them plainly (CitedCount, ...).
@dataclass(frozen=True, config=_CONFIG)
class CitedCount(Cited):
    value: Count


@dataclass(frozen=True, config=_CONFIG)
class CitedCountOrNull(Cited):
    value: Count | None


@dataclass(frozen=True, config=_CONFIG)
class CitedNumber(Cited):
    value: Number


@dataclass(frozen=True, config=_CONFIG)
class CitedNumberOrNull(Cited):
    value: Number | None


@dataclass(frozen=True, config=_CONFIG)
class CitedFlag(Cited):
    value: StrictBool


@dataclass(frozen=True, config=_CONFIG)
class CitedLevel(Cited):
    value: Level


@dataclass(frozen=True, config=_CONFIG)
class CitedCodes(Cited):
    value: Codes


def _cite(raw: Any, info: ValidationInfo) -> Any:
    """A bare value, or a cited item without `source`, takes the section's `source`."""
    section_source = info.data.get("source", "")
    if isinstance(raw, Mapping):
        return raw if "source" in raw else {**raw, "source": section_source}
    return {"value": raw, "source": section_source}


def _cited(kind: type[Cited], bare: Any) -> Any:
    """The annotation of a cited field: `{value, source, note?}` or a bare value (JSON Schema: either)."""
    return Annotated[kind, BeforeValidator(_cite, json_schema_input_type=kind | bare)]


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True, config=_CONFIG)
class Source:
    """A document the `source` strings refer to."""

    id: Text
    citation: Text
    url: StrictStr = ""


@dataclass(frozen=True, config=_CONFIG)
class Criterion:
    """What every criterion section has: whether it applies, its title, and its citation.

    `source` comes first: a bare value in the section inherits it (pydantic validates fields in order).
    """

    source: Text
    enabled: StrictBool
    title: Text


@dataclass(frozen=True, config=_CONFIG)
class FractureAgeRule(Criterion):
    """I1: days from symptom onset to the as-of date."""

    acute_below_days: _cited(CitedCount, Count)  # acute: d < this
    max_days: _cited(CitedCount, Count)  # subacute up to and including this; beyond: chronic


@dataclass(frozen=True, config=_CONFIG)
class LevelRule(Criterion):
    """I2: the levels the policy covers, and a sub-range that only earns a flag."""

    first: _cited(CitedLevel, Level)
    last: _cited(CitedLevel, Level)
    review_first: _cited(CitedLevel, Level) | None = None
    review_last: _cited(CitedLevel, Level) | None = None
    review_flag: StrictStr = ""


@dataclass(frozen=True, config=_CONFIG)
class AcuityRule(Criterion):
    """I3: acuity shown by advanced imaging (MRI edema / bone-scan uptake)."""


@dataclass(frozen=True, config=_CONFIG)
class SymptomRule(Criterion):
    """I4: pain despite non-surgical management (NSM), on the hospitalized or outpatient path."""

    # null: no separate hospitalized path; every patient goes the outpatient way.
    hospitalized_min_score: _cited(CitedNumberOrNull, Number | None)
    min_score: _cited(CitedNumber, Number)
    require_nsm: _cited(CitedFlag, StrictBool)
    nsm_min_days: _cited(CitedCountOrNull, Count | None)
    # true: worsening pain, or stable pain with `supporting_min` of A-D, is needed as well.
    require_trend: _cited(CitedFlag, StrictBool)
    supporting_min: _cited(CitedCount, Count)
    height_loss_above_percent: _cited(CitedNumber, Number)
    rdq_above: _cited(CitedCount, Count)
    # The malignant route asks only for a painful lesion unresponsive to medical therapy.
    malignant_min_score: _cited(CitedNumber, Number)


@dataclass(frozen=True, config=_CONFIG)
class ContinuumRule(Criterion):
    """I5: referral for bone-density evaluation and an osteoporosis treatment/education program."""

    require_dxa: _cited(CitedFlag, StrictBool)
    require_program: _cited(CitedFlag, StrictBool)


EXCLUSION_CHECKS = ("fact", "level-count", "coagulation")


@dataclass(frozen=True, config=_CONFIG)
class ExclusionRule:
    """One exclusion. `check` says how it is judged:

    fact:        the FractureFacts field named by `fact` (PRESENT = the exclusion applies);
    level-count: more than `limit` levels in one procedure (waivable on the malignant route for the
                 neoplasm codes in `waived_for_codes`, e.g. myeloma C90.0);
    coagulation: the fact named by `fact` (a coded coagulopathy) or the latest INR above `limit`.
    """

    source: Text
    enabled: StrictBool
    kind: Literal["absolute", "relative"]
    title: Text
    check: Literal["fact", "level-count", "coagulation"] = "fact"
    fact: Annotated[StrictStr, Field(description="For fact/coagulation: a FractureFacts field, e.g. infection.")] = ""
    limit: _cited(CitedNumberOrNull, Number | None) | None = Field(default=None, validate_default=True)
    waived_for_codes: _cited(CitedCodes, Codes) | None = None
    # The key of the exclusion in the file's `exclusions` mapping (X1, ...), filled in from it.
    id: StrictStr = ""

    @field_validator("fact")
    @classmethod
    def _names_a_fact(cls, fact: str, info: ValidationInfo) -> str:
        if info.data.get("check", "fact") in {"fact", "coagulation"} and fact not in _fact_fields():
            raise ValueError("must name a fracture fact (e.g. infection)")
        return fact

    @field_validator("limit")
    @classmethod
    def _limit_when_counted(cls, limit: Cited | None, info: ValidationInfo) -> Cited | None:
        check = info.data.get("check")
        if check in {"level-count", "coagulation"} and (limit is None or limit.value is None):
            raise ValueError(f"is required for check {check}")
        return limit


@dataclass(frozen=True, config=_CONFIG)
class CodingRule(Criterion):
    """S1: which coding route the fracture takes (osteoporotic, malignant, review, traumatic)."""

    osteoporotic_codes: _cited(CitedCodes, Codes)
    # ICD-10-CM checks (7th character, M48.5- with osteoporosis); off for non-US policies.
    icd_checks: _cited(CitedFlag, StrictBool)
    review_seventh: _cited(CitedCodes, Codes)
    malignant_route: _cited(CitedFlag, StrictBool)
    malignant_fracture_codes: _cited(CitedCodes, Codes)
    malignant_neoplasm_codes: _cited(CitedCodes, Codes)
    traumatic_prefixes: _cited(CitedCodes, Codes)
    collapsed_nec_prefixes: _cited(CitedCodes, Codes)
    deleted_cpt: _cited(CitedCodes, Codes)


@dataclass(frozen=True, config=_CONFIG)
class TechniqueRule:
    """Technique advice (not coverage): when kyphoplasty's height restoration is worth it."""

    source: Text
    kyphoplasty_height_loss_above_percent: _cited(CitedNumber, Number)
    vertebra_plana_flag: StrictStr = ""


_SECTIONS: dict[str, type] = {
    "fracture_age": FractureAgeRule,
    "level": LevelRule,
    "acuity": AcuityRule,
    "symptoms": SymptomRule,
    "continuum_of_care": ContinuumRule,
    "coding": CodingRule,
    "technique": TechniqueRule,
}
_FACT_FIELDS: set[str] = set()  # filled lazily from FractureFacts (import kept local: base module)


def _exclusions_by_id(raw: Any) -> Any:
    """The file maps exclusion ids to rules (`X1: {...}`); the Policy holds them in order, each with its id."""
    if not isinstance(raw, Mapping):
        raise ValueError("must map exclusion ids (X1, ...) to their rules")
    return [{**rule, "id": str(xid)} if isinstance(rule, Mapping) else rule for xid, rule in raw.items()]


Exclusions = Annotated[
    tuple[ExclusionRule, ...],
    BeforeValidator(_exclusions_by_id, json_schema_input_type=dict[str, ExclusionRule]),
]


_CITED_MEMO_SIZE = 256  # distinct criterion source texts remembered per policy


@dataclass(frozen=True, config=_CONFIG)
class Policy:
    """A coverage policy, as the rules read it."""

    id: Annotated[PolicyId, Field(description="What --policy and ?policy= name, e.g. cms-lcd-pva.")]
    title: Text
    sources: Annotated[tuple[Source, ...], Field(min_length=1)]
    fracture_age: FractureAgeRule
    level: LevelRule
    acuity: AcuityRule
    symptoms: SymptomRule
    continuum_of_care: ContinuumRule
    coding: CodingRule
    technique: TechniqueRule
    exclusions: Exclusions
    version: StrictStr = ""
    description: StrictStr = ""
    file: SkipJsonSchema[str] = dataclasses.field(default="", init=False, compare=False)

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        age = self.fracture_age
        if age.acute_below_days.value > age.max_days.value + 1:
            raise ValueError(f"key 'fracture_age.acute_below_days' ({age.acute_below_days.value}) is beyond "
                             f"'fracture_age.max_days' ({age.max_days.value})")
        rule = self.level
        if ALL_LEVELS.index(rule.first.value) > ALL_LEVELS.index(rule.last.value):
            raise ValueError(f"key 'level.first' ({rule.first.value}) is below 'level.last' ({rule.last.value})")
        if (rule.review_first is None) != (rule.review_last is None):
            raise ValueError("keys 'level.review_first' and 'level.review_last' go together")
        return self

    def source_for(self, text: str) -> Source | None:
        """The listed source a criterion's `source` text cites: the `sources[].id` named first in it.

        "LCD L34106, inclusion 1a" cites LCD; "A56572: level limit waived" cites A56572. So each
        criterion links to the published text behind it (its `url`) without repeating the URL.
        """
        memo = self._cited
        if text in memo:
            return memo[text]
        pattern, by_id = self._citations
        match = pattern.search(text or "")
        cited = by_id[match.group(1)] if match else None
        if len(memo) < _CITED_MEMO_SIZE:
            memo[text] = cited
        return cited

    @functools.cached_property
    def _cited(self) -> dict[str, Source | None]:
        """`source_for`'s answers by text: a criterion's source text comes from the policy and the rules,
        so the same few dozen repeat for every patient and evaluation (bounded: `_CITED_MEMO_SIZE`)."""
        return {}

    @functools.cached_property
    def _citations(self) -> tuple[re.Pattern[str], dict[str, Source]]:
        """One search for every source id, built once per policy (a search per source and criterion was a
        quarter of rendering an evaluation): the leftmost id cited wins, and at one place the source
        listed first, as `min` over each source's first match would choose."""
        by_id: dict[str, Source] = {}
        for source in self.sources:
            by_id.setdefault(source.id, source)
        ids = "|".join(re.escape(source.id) for source in self.sources)
        return re.compile(rf"(?<![\w-])({ids})(?![\w-])"), by_id

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


_POLICY = TypeAdapter(Policy)


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema of a policy file (draft 2020-12), for policy authors and their editors."""
    schema = _POLICY.json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "fhir-vcf coverage policy",
        "description": "A coverage policy file (YAML or JSON) for fhir-vcf: docs/policies.md.",
    }


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
    if not isinstance(data, Mapping):
        raise PolicyError(f"{file}: a policy must be a mapping at the top level")
    try:
        policy = _POLICY.validate_python(data)
    except ValidationError as exc:
        raise PolicyError(f"{file}: {_first_problem(exc, data)}") from None
    object.__setattr__(policy, "file", file)  # where it came from, for messages (not part of the policy)
    return policy


# --------------------------------------------------------------------------- errors naming the key

_MESSAGES = {
    "missing": "missing key",
    "extra_forbidden": "unknown key (not in the policy schema: docs/policy.schema.json)",
    "unexpected_keyword_argument": "unknown key (not in the policy schema: docs/policy.schema.json)",
    "bool_type": "must be true or false",
    "int_type": "must be a whole number",
    "float_type": "must be a number",
    "string_type": "must be a string",
    "greater_than_equal": "must not be negative",
    "dataclass_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "tuple_type": "must be a list",
    "too_short": "must not be empty",
    "literal_error": None,  # pydantic's own words list the allowed values
}


def _first_problem(exc: ValidationError, data: Mapping[str, Any]) -> str:
    """`key 'symptoms.min_score.value': must be a number, got 'seven'` from pydantic's first error."""
    error = exc.errors(include_url=False)[0]
    path = _key_path(error["loc"], data)
    message = _MESSAGES.get(error["type"]) or str(error["msg"]).removeprefix("Value error, ")
    message = message.replace("Input should be", "must be")
    quiet = {"missing", "extra_forbidden", "unexpected_keyword_argument"}
    shown_input = error.get("input")
    if path and error["type"] not in quiet and shown_input is not None and not isinstance(shown_input, Mapping):
        shown = repr(shown_input)
        message += f", got {shown if len(shown) <= 60 else shown[:57] + '...'}"
    return f"key '{path}': {message}" if path else message


def _key_path(loc: tuple[Any, ...], data: Any) -> str:
    """pydantic's location as the file's keys: exclusions by their id (X2), list items as [i]."""
    parts: list[str] = []
    node: Any = data
    for i, step in enumerate(loc):
        if isinstance(step, int):
            if i == 1 and loc[0] == "exclusions" and isinstance(data.get("exclusions"), Mapping):
                ids = list(data["exclusions"])
                step_key: Any = ids[step] if step < len(ids) else step
                parts.append(f".{step_key}")
                node = data["exclusions"].get(step_key)
                continue
            parts.append(f"[{step}]")
            node = node[step] if isinstance(node, list) and step < len(node) else None
            continue
        if not isinstance(step, str) or (isinstance(node, Mapping) and step not in node and step not in _field_names()):
            continue  # pydantic's own markers (function-after[...], ...)
        parts.append(f".{step}" if parts else step)
        node = node.get(step) if isinstance(node, Mapping) else None
    return "".join(parts).lstrip(".")


@functools.cache
def _field_names() -> frozenset[str]:
    names: set[str] = set()
    for cls in (Policy, Source, Cited, ExclusionRule, *_SECTIONS.values()):
        names.update(f.name for f in dataclasses.fields(cls))
    return frozenset(names)


def _fact_fields() -> set[str]:
    if not _FACT_FIELDS:
        from fhir_vcf.facts import FractureFacts

        hints = typing.get_type_hints(FractureFacts)
        # Only single facts (Fact[...]), not per-level dicts or tuples of them.
        _FACT_FIELDS.update(name for name, hint in hints.items() if str(hint).startswith("fhir_vcf.facts.Fact["))
    return _FACT_FIELDS


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _section_dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None or value == "":
            continue
        out[_camel(f.name)] = value.to_dict() if isinstance(value, Cited) else _jsonable(value)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value
