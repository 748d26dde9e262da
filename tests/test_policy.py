"""Policies as data: built-ins, extra files, load_policy, to_dict, and clear errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from factories import eligible

from fhir_vcf.errors import PolicyError
from fhir_vcf.rules import judge
from fhir_vcf.rules.policy import BUILTIN_DIR, load_policies, load_policy

DEFAULT = BUILTIN_DIR / "cms-lcd-pva.yaml"


def _raw() -> dict:
    return yaml.safe_load(DEFAULT.read_text())


def _write(tmp_path: Path, data: dict, name: str = "site.yaml") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if name.endswith(".json") else yaml.safe_dump(data))
    return path


def test_builtins_load_with_id_and_title():
    policies = load_policies()
    assert {"cms-lcd-pva", "commercial-strict", "nice-ta279"} <= set(policies)
    lcd = policies["cms-lcd-pva"]
    assert lcd.id == "cms-lcd-pva" and "L34106" in lcd.title
    assert lcd.max_levels == 3
    assert lcd.fracture_age.acute_below_days.value == 42 and lcd.fracture_age.max_days.value == 84
    assert policies["commercial-strict"].max_levels == 2
    assert policies["commercial-strict"].symptoms.min_score.value == 7
    assert policies["commercial-strict"].symptoms.nsm_min_days.value == 28


def _cited_items(node, path=""):
    if isinstance(node, dict):
        if "value" in node and "source" in node:
            yield path, node
        for k, v in node.items():
            yield from _cited_items(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _cited_items(v, f"{path}[{i}]")


@pytest.mark.parametrize("name", ["cms-lcd-pva", "commercial-strict", "nice-ta279"])
def test_to_dict_is_json_and_every_value_is_cited(name):
    data = load_policies()[name].to_dict()
    json.dumps(data)
    items = list(_cited_items(data))
    assert len(items) > 15
    assert all(item["source"].strip() for _, item in items)
    assert {"fractureAge", "level", "symptoms", "continuumOfCare", "coding", "exclusions", "sources"} <= set(data)


def test_to_dict_shows_thresholds_windows_levels_and_codes():
    data = load_policies()["cms-lcd-pva"].to_dict()
    assert data["fractureAge"]["maxDays"]["value"] == 84
    assert data["level"]["first"]["value"] == "T1" and data["level"]["last"]["value"] == "L5"
    x4 = next(x for x in data["exclusions"] if x["id"] == "X4")
    assert x4["limit"]["value"] == 3 and x4["waivedForCodes"]["value"] == ["C90.0"]
    assert "M80.08XA" in data["coding"]["osteoporoticCodes"]["value"]


def test_load_policy_by_id_and_by_path(tmp_path):
    known = load_policies()
    assert load_policy("nice-ta279", known) is known["nice-ta279"]
    data = _raw()
    data["id"] = "site-policy"
    data["symptoms"]["min_score"] = {"value": 6, "source": "site rule 4.2"}
    loaded = load_policy(str(_write(tmp_path, data)), known)
    assert loaded.id == "site-policy" and loaded.symptoms.min_score.value == 6
    as_json = load_policy(str(_write(tmp_path, data, "site.json")), known)
    assert as_json.symptoms.min_score.source == "site rule 4.2"


def test_load_policy_unknown_id():
    with pytest.raises(PolicyError, match="unknown policy 'nope'"):
        load_policy("nope", load_policies())


def test_extra_files_add_and_may_replace_a_builtin(tmp_path):
    data = _raw()
    data["fracture_age"]["max_days"] = {"value": 90, "source": "site override"}
    policies = load_policies([str(_write(tmp_path, data))])
    assert policies["cms-lcd-pva"].fracture_age.max_days.value == 90
    assert "nice-ta279" in policies


def test_two_extra_files_with_one_id_are_an_error(tmp_path):
    data = _raw()
    a, b = _write(tmp_path, data, "a.yaml"), _write(tmp_path, data, "b.yaml")
    with pytest.raises(PolicyError, match="also defined"):
        load_policies([str(a), str(b)])


def test_a_policy_file_changes_the_answer_without_code(tmp_path):
    data = _raw()
    data["id"] = "tight"
    data["fracture_age"]["acute_below_days"] = {"value": 14, "source": "site"}
    data["fracture_age"]["max_days"] = {"value": 20, "source": "site"}
    tight = load_policy(str(_write(tmp_path, data)), {})
    assert judge(eligible(), tight).decision == "not-eligible"


@pytest.mark.parametrize(("mutate", "key"), [
    (lambda d: d.update(colour="red"), "colour"),
    (lambda d: d["symptoms"].update(min_scor=5), "symptoms.min_scor"),
    (lambda d: d["symptoms"].update(min_score={"value": "seven", "source": "x"}), "symptoms.min_score"),
    (lambda d: d["symptoms"].update(min_score={"value": 5, "source": ""}), "symptoms.min_score"),
    (lambda d: d["symptoms"].update(min_score={"value": 5, "src": "x"}), "symptoms.min_score.src"),
    (lambda d: d["symptoms"].update(min_score=None), "symptoms.min_score"),
    (lambda d: d["symptoms"].pop("rdq_above"), "symptoms.rdq_above"),
    (lambda d: d["level"].update(first={"value": "Q9", "source": "x"}), "level.first"),
    (lambda d: d["exclusions"]["X2"].update(fact="infekshun"), "exclusions.X2.fact"),
    (lambda d: d["exclusions"]["X2"].update(kind="sometimes"), "exclusions.X2.kind"),
    (lambda d: d["exclusions"]["X4"].pop("limit"), "exclusions.X4.limit"),
    (lambda d: d["fracture_age"].update(enabled="yes"), "fracture_age.enabled"),
    (lambda d: d["coding"].update(osteoporotic_codes={"value": "M80.08XA", "source": "x"}),
     "coding.osteoporotic_codes"),
    (lambda d: d.pop("symptoms"), "symptoms"),
    (lambda d: d.update(id=""), "id"),
    (lambda d: d["fracture_age"].update(max_days=30), "fracture_age.acute_below_days"),
])
def test_bad_policy_names_the_file_and_the_key(tmp_path, mutate, key):
    data = _raw()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(PolicyError) as err:
        load_policy(str(path), {})
    assert str(path) in str(err.value)
    assert key in str(err.value)


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(PolicyError, match="no such policy file"):
        load_policy(str(tmp_path / "missing.yaml"), {})
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [unclosed\n")
    with pytest.raises(PolicyError, match=r"bad\.yaml: not valid YAML"):
        load_policy(str(bad), {})
    scalar = tmp_path / "scalar.json"
    scalar.write_text("[1, 2]")
    with pytest.raises(PolicyError, match="mapping at the top level"):
        load_policy(str(scalar), {})


def test_policy_is_frozen():
    lcd = load_policies()["cms-lcd-pva"]
    with pytest.raises(AttributeError):
        lcd.id = "x"  # type: ignore[misc]


# --- the declarative schema, published for policy authors ---------------------------------------------

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "docs" / "policy.schema.json"


def test_the_published_schema_is_the_generated_one():
    """docs/policy.schema.json is regenerated with `fhir-vcf policies --schema > docs/policy.schema.json`."""
    from fhir_vcf.rules.policy import policy_json_schema

    assert json.loads(SCHEMA_FILE.read_text()) == policy_json_schema()


def test_the_schema_is_served_and_printed(tmp_path, capsys):
    from api_support import make_app

    from fhir_vcf.cli import main

    response = make_app(tmp_path).test_client().get("/api/v1/policies/schema")
    assert response.status_code == 200 and response.mimetype == "application/schema+json"
    assert response.get_data(as_text=True) == SCHEMA_FILE.read_text()
    assert main(["policies", "--schema"]) == 0
    assert capsys.readouterr().out == SCHEMA_FILE.read_text()


@pytest.mark.parametrize("name", ["cms-lcd-pva", "commercial-strict", "nice-ta279"])
def test_every_builtin_policy_is_valid_against_the_published_schema(name):
    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load((BUILTIN_DIR / f"{name}.yaml").read_text()), schema,
                        cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize("mutate", [
    lambda d: d.update(colour="red"),
    lambda d: d["symptoms"].update(min_score={"value": "seven", "source": "x"}),
    lambda d: d["symptoms"].update(min_score=-1),
    lambda d: d["level"].update(first={"value": "Q9", "source": "x"}),
    lambda d: d["exclusions"]["X2"].update(kind="sometimes"),
    lambda d: d["fracture_age"].update(enabled="yes"),
    lambda d: d.pop("symptoms"),
    lambda d: d.update(sources=[]),
])
def test_an_editor_with_the_schema_flags_what_the_service_refuses(tmp_path, mutate):
    import jsonschema

    data = _raw()
    mutate(data)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text()), cls=jsonschema.Draft202012Validator)
    with pytest.raises(PolicyError):
        load_policy(str(_write(tmp_path, data)), {})


def test_the_level_pattern_says_what_is_level_says():
    import re

    from fhir_vcf.levels import ALL_LEVELS, is_level
    from fhir_vcf.rules.policy import LEVEL_PATTERN

    candidates = [*ALL_LEVELS, "C0", "C8", "T0", "T13", "L0", "L6", "S0", "S6", "Q1", "t12", "T1 ", "L"]
    for label in candidates:
        assert bool(re.match(LEVEL_PATTERN, label)) == is_level(label), label


def test_bare_values_take_their_section_source_and_numbers_written_as_codes_are_text(tmp_path):
    data = _raw()
    data["fracture_age"]["max_days"] = 90
    data["coding"]["deleted_cpt"] = {"value": [22520, "72291"], "source": "AMA CPT"}
    policy = load_policy(str(_write(tmp_path, data)), {})
    assert policy.fracture_age.max_days.value == 90
    assert policy.fracture_age.max_days.source == data["fracture_age"]["source"]
    assert policy.coding.deleted_cpt.value == ("22520", "72291")


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.update(id="schema"),
     "key 'id': is reserved (/api/v1/policies/schema is the JSON Schema), got 'schema'"),
    (lambda d: d["symptoms"].update(min_score=True), "key 'symptoms.min_score.value': must be a number, got True"),
    (lambda d: d["fracture_age"].update(max_days=4.5),
     "key 'fracture_age.max_days.value': must be a whole number, got 4.5"),
    (lambda d: d["exclusions"]["X4"].update(limit={"value": None, "source": "x"}),
     "key 'exclusions.X4.limit': is required for check level-count"),
])
def test_errors_say_what_is_wrong_with_which_key(tmp_path, mutate, message):
    data = _raw()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(PolicyError) as err:
        load_policy(str(path), {})
    assert str(err.value) == f"{path}: {message}"


def test_a_criterion_cites_the_leftmost_source_id_its_text_names():
    """`Policy.source_for` searches every source id at once: the same source as the first match of each id
    searched alone, the leftmost winning and, at one place, the source listed first."""
    import copy
    import random
    import re

    from fhir_vcf.rules.policy import Source

    def one_by_one(policy, text):
        found = [(m.start(), s) for s in policy.sources
                 if (m := re.search(rf"(?<![\w-]){re.escape(s.id)}(?![\w-])", text or ""))]
        return min(found, key=lambda pair: pair[0])[1] if found else None

    policies = list(load_policies().values())
    base = policies[0]
    extra = (Source(id="LCD-X", citation="x"), Source(id="LCD", citation="again"), Source(id="A5", citation="a5"))
    grown = copy.copy(base)  # more ids, one a prefix of another and one listed twice (no re-validation)
    object.__setattr__(grown, "sources", (*base.sources, *extra))
    grown.__dict__.pop("_citations", None)
    policies.append(grown)
    chooser = random.Random(7)
    for policy in policies:
        ids = [s.id for s in policy.sources]
        pieces = [*ids, " ", "-", "_", ",", "x", ": ", "inclusion 1a", "9"]
        texts = ["", None, *(c for c in ids)]
        texts += ["".join(chooser.choice(pieces) for _ in range(chooser.randint(1, 6))) for _ in range(3000)]
        hits = 0
        for text in texts:
            assert policy.source_for(text) is one_by_one(policy, text), (policy.id, text)
            hits += policy.source_for(text) is not None
        assert 0 < hits < len(texts)
