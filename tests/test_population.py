"""Whole populations: synth, screen and audit over Bulk NDJSON, on the local and the Dask engines.

The expected decisions per synthetic scenario are written from the rules (docs/clinical-rules):
each scenario documents one decision path, judged as of the population's date (screen) or as of
the procedure's day (audit). The engines must agree byte for byte, whatever the number of workers.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fhir_vcf.cli import main
from fhir_vcf.population.engines import DaskEngine, LocalEngine
from fhir_vcf.population.run import run
from fhir_vcf.population.synth import SCENARIOS, patients, write_population
from fhir_vcf.rules.policy import load_policies, load_policy
from fhir_vcf.sources.bulk_ndjson import plan_chunks, read_chunk, type_from_name

AS_OF = date(2025, 6, 30)
SEED, N, SHARE = 5, 60, 0.5
EXPECTED = {  # scenario → decision (clinical-rules.md, "Decision")
    "eligible-outpatient-worsening": "eligible",  # I4b1 worsening NRS 6 → 7
    "eligible-hospitalized": "eligible",  # I4a inpatient NRS 9, 8
    "eligible-outpatient-supporting": "eligible",  # I4b2 stable 7, 7 + height loss 35 % + kyphosis + RDQ 19
    "not-eligible-chronic": "not-eligible",  # I1: onset > 84 days
    "insufficient-radiograph-only": "insufficient-data",  # I3: acuity unknown on a radiograph
    "gap-no-osteoporosis-treatment": "insufficient-data",  # I5: no treatment/education program
    "gap-no-bone-health-workup": "insufficient-data",  # I5: neither DXA nor program
    "excluded-discitis": "not-eligible",  # X2
    "excluded-cement-allergy": "not-eligible",  # X5
    "excluded-coagulopathy": "not-eligible",  # X6: INR 2.4 > 1.5
    "excluded-retropulsion": "not-eligible",  # X11
    "not-eligible-traumatic": "not-eligible",  # S32.0 without osteoporosis
    "review-collapsed-vertebra-nec": "needs-review",  # M48.5 with osteoporosis documented
    "malignant-myeloma": "eligible",  # A56572: C90.00 + M84.58XA
}
OUTPUTS = ("evaluations.jsonl", "table.csv", "problems.jsonl", "errors.jsonl", "summary.json")


@pytest.fixture(scope="module")
def policy():
    return load_policy("cms-lcd-pva", load_policies())


@pytest.fixture(scope="module")
def population(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("population")
    write_population(folder, N, seed=SEED, vcf_share=SHARE)
    return folder


@pytest.fixture(scope="module")
def scenarios() -> dict[str, str]:
    out = {}
    for scenario, resources in patients(N, seed=SEED, as_of=AS_OF, vcf_share=SHARE):
        if scenario:
            out[f"Patient/{resources[0]['id']}"] = scenario
    return out


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=40) as local:
        yield local


def _run(mode, source, out, policy, engine, **kw):
    return run(mode, source, out, as_of=AS_OF, policy=policy, engine=engine, **kw)


def _evaluations(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "evaluations.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------- synth


def test_synth_is_deterministic_by_seed(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_population(a, 40, seed=11)
    write_population(b, 40, seed=11)
    write_population(c, 40, seed=12)
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert "Patient.ndjson" in names and "Immunization.ndjson" in names  # one file per type, unused types too
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "Patient.ndjson").read_bytes() != (c / "Patient.ndjson").read_bytes()


def test_synth_population_has_an_age_and_sex_mix_and_history(population: Path) -> None:
    people = [json.loads(x) for x in (population / "Patient.ndjson").read_text().splitlines()]
    assert len(people) == N
    assert {p["gender"] for p in people} == {"female", "male"}
    years = sorted(int(p["birthDate"][:4]) for p in people)
    assert years[-1] - years[0] > 30
    encounters = [json.loads(x) for x in (population / "Encounter.ndjson").read_text().splitlines()]
    assert min(e["period"]["start"][:4] for e in encounters) < "2023"  # years of unrelated history


def test_the_first_episodes_walk_every_scenario(scenarios: dict[str, str]) -> None:
    names = {s.removesuffix(" (audited)") for s in scenarios.values()}
    assert names == {s.name for s in SCENARIOS} == set(EXPECTED)


# --------------------------------------------------------------------------- screen and audit


def test_screen_judges_every_scenario_as_the_rules_say(population, tmp_path, policy, scenarios) -> None:
    report = _run("screen", population, tmp_path, policy, LocalEngine(1, progress=False))
    found = {e["patient"]: e for e in _evaluations(tmp_path)}
    current = {p: s for p, s in scenarios.items() if "audited" not in s}
    for patient, scenario in current.items():
        assert found[patient]["decision"] == EXPECTED[scenario], (scenario, found[patient]["decisionReason"])
    assert {e["decision"] for e in found.values()} == {"eligible", "not-eligible", "needs-review",
                                                        "insufficient-data"}
    assert report.patients == N
    assert report.rows + report.skipped == N  # everyone judged: listed, or counted without a fracture
    assert list(found) == sorted(found)  # by patient


def test_audit_judges_each_procedure_on_its_day(population, tmp_path, policy, scenarios) -> None:
    _run("audit", population, tmp_path, policy, LocalEngine(1, progress=False))
    rows = _evaluations(tmp_path)
    audited = {p: s.removesuffix(" (audited)") for p, s in scenarios.items() if "audited" in s}
    assert {r["patient"] for r in rows} == set(audited)
    for r in rows:
        assert r["procedure"].startswith("Procedure/")
        assert r["asOf"] == r["performed"] < AS_OF.isoformat()
        assert r["request"]["reference"] == r["procedure"]
        assert r["decision"] == EXPECTED[audited[r["patient"]]], r["decisionReason"]


@pytest.mark.parametrize("mode", ["screen", "audit"])
def test_engines_and_worker_counts_give_the_same_outputs(population, tmp_path, policy, cluster, mode) -> None:
    outs = {name: tmp_path / name for name in ("local1", "local2", "dask2")}
    _run(mode, population, outs["local1"], policy, LocalEngine(1, progress=False))
    _run(mode, population, outs["local2"], policy, LocalEngine(2, progress=False))
    _run(mode, population, outs["dask2"], policy, DaskEngine(cluster.scheduler_address, progress=False))
    reference = outs["local1"]
    assert (reference / "evaluations.jsonl").stat().st_size > 0
    for name, out in outs.items():
        for output in OUTPUTS:
            assert (out / output).read_bytes() == (reference / output).read_bytes(), (name, output)
        assert pq.read_table(out / "table.parquet").equals(pq.read_table(reference / "table.parquet"))
    parts = pq.read_table(outs["dask2"] / "parts")  # the partitioned Parquet of the Dask workers
    assert sorted(parts.column("patient").to_pylist()) == pq.read_table(reference / "table.parquet").column(
        "patient").to_pylist()


def test_malformed_lines_are_reported_with_file_and_line_and_the_run_goes_on(population, tmp_path, policy,
                                                                              capsys) -> None:
    source = tmp_path / "src"
    shutil.copytree(population, source)
    obs = source / "Observation.ndjson"
    lines = obs.read_text().splitlines()
    patient = "Patient/" + json.loads(lines[0])["subject"]["reference"].rsplit("/", 1)[1]
    # A pain score (read by the mappers, so validated; a routine vital sign is set aside unvalidated).
    bad_value = json.loads(lines[0]) | {"code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]},
                                        "valueQuantity": {"value": "abc"}}
    lines[1:1] = ["{not json", "[1, 2]", '{"id": "x"}', json.dumps(bad_value),
                  json.dumps({"resourceType": "Observation", "status": "final", "code": {"text": "x"}})]
    obs.write_text("\n".join(lines) + "\n")
    report = _run("screen", source, tmp_path / "out", policy, LocalEngine(2, progress=False), all_patients=True)
    problems = [json.loads(x) for x in (tmp_path / "out" / "problems.jsonl").read_text().splitlines()]
    assert [(p["file"], p["line"]) for p in problems] == [("Observation.ndjson", n) for n in (2, 3, 4, 5, 6)]
    assert "invalid JSON" in problems[0]["problem"] and "expected a JSON object" in problems[1]["problem"]
    assert "no resourceType" in problems[2]["problem"]
    assert "valueQuantity" in problems[3]["problem"] and "names no patient" in problems[4]["problem"]
    assert report.bad_lines == 5 and report.patients == N
    assert patient in {e["patient"] for e in _evaluations(tmp_path / "out")}  # still judged without that line
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["badLines"] == 5
    assert "Observation.ndjson:2: invalid JSON" in capsys.readouterr().err


def _bundle_patient(tmp_path: Path, *, formulary: bool) -> Path:
    """One eligible patient whose alendronate is a formulary Medication in its own file."""
    for _scenario, resources in patients(400, seed=2, as_of=AS_OF, vcf_share=0.5):
        meds = [r for r in resources if r.get("medicationReference")]
        if meds and _scenario == "eligible-outpatient-worsening":
            break
    else:  # pragma: no cover - the seed is chosen so that this never happens
        raise AssertionError("no formulary patient in the seed")
    folder = tmp_path / ("with" if formulary else "without")
    folder.mkdir()
    by_type: dict[str, list[str]] = {}
    for r in resources:
        r.pop("note", None)  # the DXA order's education note would meet I5 on its own
        by_type.setdefault(r["resourceType"], []).append(json.dumps(r))
    if formulary:
        by_type["Medication"] = [json.dumps({"resourceType": "Medication", "id": "alendronate-70mg", "code": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "46041"}]}})]
    for rtype, lines in by_type.items():
        (folder / f"{rtype}.ndjson").write_text("\n".join(lines) + "\n")
    return folder


def test_shared_resources_are_resolved_through_references(tmp_path, policy) -> None:
    decisions = {}
    for formulary in (True, False):
        folder = _bundle_patient(tmp_path, formulary=formulary)
        _run("screen", folder, tmp_path / f"out-{formulary}", policy, LocalEngine(1, progress=False))
        (only,) = _evaluations(tmp_path / f"out-{formulary}")
        decisions[formulary] = (only["decision"], {c["id"]: c["status"] for c in only["criteria"]}["I5"])
    assert decisions[True] == ("eligible", "met")
    assert decisions[False] == ("insufficient-data", "unknown")  # the treatment order names no drug


def test_summary_report_is_self_contained_and_accessible(population, tmp_path, policy) -> None:
    _run("screen", population, tmp_path, policy, LocalEngine(1, progress=False))
    page = (tmp_path / "summary.html").read_text()
    assert page.count('role="img" aria-labelledby="c-') == 4  # decisions, missing, exclusions, care gaps
    assert "<script" not in page and 'href="http' not in page and "src=" not in page and "@import" not in page
    assert "Care gaps" in page and "@media print" in page  # the explanation page's inlined stylesheet
    assert 'class="population"' in page and "--badge-eligible" in page
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["careGapPatients"] >= 2 and summary["exclusions"]
    assert sum(summary["decisions"].values()) == summary["rows"]


# --------------------------------------------------------------------------- reading NDJSON


def test_chunks_keep_line_numbers_across_boundaries(tmp_path: Path) -> None:
    path = tmp_path / "Observation.ndjson"
    path.write_text("".join(f'{{"n": {i}}}\n' for i in range(1, 501)))
    chunks = plan_chunks([path], target_bytes=100)
    assert len(chunks) > 10
    seen = [(number, json.loads(raw)["n"]) for c in chunks for number, raw in read_chunk(c)]
    assert seen == [(i, i) for i in range(1, 501)]


@pytest.mark.parametrize("name, rtype", [("Observation.ndjson", "Observation"), ("Observation.002.ndjson",
                                         "Observation"), ("Practitioner_1.ndjson", "Practitioner"),
                                         ("1.Encounter.ndjson", "Encounter"), ("export.ndjson", None)])
def test_the_type_is_read_from_the_file_name(name: str, rtype: str | None) -> None:
    assert type_from_name(name) == rtype


# --------------------------------------------------------------------------- command line


def test_cli_synth_screen_and_audit(tmp_path: Path, capsys) -> None:
    assert main(["synth", "--patients", "30", "--out", str(tmp_path / "pop"), "--seed", "3",
                 "--vcf-share", "0.4"]) == 0
    assert json.loads(capsys.readouterr().out)["patients"] == 30
    assert main(["screen", str(tmp_path / "pop"), "--out", str(tmp_path / "s"), "--as-of", "2025-06-30",
                 "--workers", "1", "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert "30 patients read" in said
    (line,) = [line for line in said.splitlines() if line.startswith("outputs in ")]
    listed = line.split(": ", 1)[1].split()
    assert listed == sorted(p.name + ("/" if p.is_dir() else "") for p in (tmp_path / "s").iterdir())
    assert main(["audit", str(tmp_path / "pop"), "--out", str(tmp_path / "a"), "--workers", "1",
                 "--no-progress"]) == 0
    for name in ("evaluations.jsonl", "table.parquet", "table.csv", "summary.html"):
        assert (tmp_path / "s" / name).exists() and (tmp_path / "a" / name).exists()


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path: Path, capsys) -> None:
    # As for `evaluate` (README): a bar only on a terminal, never in a log file or a pipe.
    write_population(tmp_path / "pop", 12, seed=SEED, vcf_share=SHARE)
    assert main(["screen", str(tmp_path / "pop"), "--out", str(tmp_path / "s"), "--as-of", "2025-06-30",
                 "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "12 patients read" in captured.out
    assert "\r" not in captured.err and "judging" not in captured.err and "reading" not in captured.err


@pytest.mark.parametrize("argv, message", [
    (["screen", "nowhere", "--out", "x"], "not a folder of Bulk Data NDJSON files"),
    (["screen", ".", "--out", "x", "--scheduler", "tcp://127.0.0.1:1"], "--scheduler needs --engine dask"),
    (["screen", ".", "--out", "x", "--policy", "no-such-policy"], "no-such-policy"),
])
def test_cli_errors_are_one_line(tmp_path: Path, capsys, monkeypatch, argv, message) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_rejects_a_bad_share_or_count(capsys) -> None:
    assert main(["synth", "--patients", "0", "--out", "x"]) == 2
    assert main(["synth", "--patients", "3", "--out", "x", "--vcf-share", "2"]) == 2


def test_dask_without_a_scheduler_starts_and_closes_its_own_local_cluster(tmp_path, policy) -> None:
    import psutil

    folder = _bundle_patient(tmp_path, formulary=True)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    report = _run("screen", folder, tmp_path / "out", policy, DaskEngine(None, 2, progress=False))
    assert report.rows == 1 and (tmp_path / "out" / "parts").is_dir()
    # Dask's workers, nannies and scheduler are Python processes; a browser test's Chromium, which may
    # start a helper process at any time, is not the cluster's.
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before and p.is_running()
            and p.status() != psutil.STATUS_ZOMBIE and p.name().startswith("python")]
    assert left == []  # no worker, nanny or scheduler process outlives the run


def test_a_patients_lines_are_read_in_place_order_and_shared_resources_only_when_not_held() -> None:
    """`_entries`: lines sorted by (file, line), labelled Type/id (or by place), bad lines reported; a
    shared resource is added when referenced and not already among the patient's own (`where` holds
    every label read)."""
    from fhir_vcf.population.patients import PatientOutcome, _entries

    med = {"resourceType": "Medication", "id": "m1"}
    held = {"resourceType": "Medication", "id": "m2"}
    order = {"resourceType": "MedicationRequest", "id": "r1", "subject": {"reference": "Patient/p"},
             "medicationReference": {"reference": "Medication/m1"}}
    other = {**order, "id": "r2", "medicationReference": {"reference": "Medication/m2"}}
    lines = [("b.ndjson", 2, json.dumps(other).encode()), ("b.ndjson", 1, b"{oops"),
             ("a.ndjson", 9, json.dumps(held).encode()), ("a.ndjson", 3, json.dumps(order).encode()),
             ("a.ndjson", 10, b'{"resourceType": "Observation"}')]
    shared = {"Medication/m1": b"meds.ndjson\t4\t" + json.dumps(med).encode(),
              "Medication/m2": b"meds.ndjson\t5\t" + json.dumps({**held, "code": {"text": "x"}}).encode()}
    out = PatientOutcome()
    entries, where = _entries(lines, shared, out)
    assert [label for _, _, label in entries] == ["MedicationRequest/r1", "Medication/m2",
                                                  "Observation at a.ndjson:10", "MedicationRequest/r2",
                                                  "Medication/m1"]
    assert entries[1][1] == held  # the patient's own copy, not the shared one
    assert where == {"MedicationRequest/r1": ("a.ndjson", 3), "Medication/m2": ("a.ndjson", 9),
                     "Observation at a.ndjson:10": ("a.ndjson", 10), "MedicationRequest/r2": ("b.ndjson", 2),
                     "Medication/m1": ("meds.ndjson", 4)}
    assert [(b.file, b.line) for b in out.bad_lines] == [("b.ndjson", 1)]
