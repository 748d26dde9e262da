"""The `fhir-vcf` command line: exit codes, output formats and bad-input handling.

The clinical core is replaced by a stub here (`cli._evaluate`), so these tests pin the CLI's own
behaviour: which files it reads, what it prints where, and which exit code it returns. The real
end-to-end replay of the samples is in test_samples.py.
"""

from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fhir_vcf import cli
from fhir_vcf.outputs.text import render_text

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def _patient(pid: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1950-01-01"}


def _condition(cid: str, pid: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "code": {"text": "Osteoporotic compression fracture L1"},
        "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": "2025-06-02",
        **extra,
    }


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def _fake_evaluation(record: Any, *, as_of: Any, policy: Any) -> dict[str, Any]:
    return {
        "patient": record.patient,
        "asOf": as_of.isoformat(),
        "policy": policy.id,
        "decision": "eligible",
        "technique": "either",
        "levels": ["L1"],
        "criteria": [
            {
                "id": "I1",
                "title": "Fracture age",
                "kind": "inclusion",
                "status": "met",
                "reason": "onset 2025-06-02, 28 days before the as-of date: acute",
                "evidence": ["Condition/c1"],
                "source": "LCD L34106, inclusion 1a",
            },
            {
                "id": "X3",
                "title": "Pregnancy",
                "kind": "exclusion",
                "status": "absent",
                "reason": "no pregnancy recorded",
                "evidence": [],
                "source": "LCD L34106, exclusion",
            },
        ],
        "missing": [],
        "flags": ["T1-T4 level: may trigger focused medical review"],
    }


@pytest.fixture
def stub_core(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the clinical core; returns the patients it was asked about, in order."""
    seen: list[str] = []

    def fake(record: Any, *, as_of: Any, policy: Any) -> dict[str, Any]:
        seen.append(record.patient)
        return _fake_evaluation(record, as_of=as_of, policy=policy)

    monkeypatch.setattr(cli, "_evaluate", fake)
    return seen


def _write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_lines_one_compact_object_per_patient(tmp_path, capsys, stub_core):
    _write(tmp_path / "one.json", _bundle(_patient("a"), _condition("c1", "a")))
    _write(tmp_path / "two.json", _bundle(_patient("b"), _patient("c"), _condition("c2", "b"), _condition("c3", "c")))
    code, out, err = _run(capsys, "evaluate", str(tmp_path), "--as-of", "2025-06-30")
    assert code == 0, err
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 3
    objects = [json.loads(line) for line in lines]
    assert [o["patient"] for o in objects] == ["Patient/a", "Patient/b", "Patient/c"]
    assert all(o["asOf"] == "2025-06-30" and o["policy"] == "cms-lcd-pva" for o in objects)
    assert lines == [json.dumps(o, separators=(",", ":")) for o in objects]  # compact, no trailing spaces


def test_directory_skips_expected_json(tmp_path, capsys, stub_core):
    _write(tmp_path / "one.json", _bundle(_patient("a")))
    _write(tmp_path / "expected.json", {"one.json": {}})
    code, out, _ = _run(capsys, "evaluate", str(tmp_path), "--as-of", "2025-06-30")
    assert code == 0
    assert len(out.splitlines()) == 1


def test_as_of_defaults_to_today_utc(tmp_path, capsys, stub_core, monkeypatch):
    monkeypatch.setattr(cli, "today_utc", lambda: date(2031, 1, 2))
    _write(tmp_path / "one.json", _bundle(_patient("a")))
    code, out, _ = _run(capsys, "evaluate", str(tmp_path / "one.json"))
    assert code == 0
    assert json.loads(out)["asOf"] == "2031-01-02"


def test_text_format_has_every_criterion_with_reason_evidence_and_source(tmp_path, capsys, stub_core):
    _write(tmp_path / "one.json", _bundle(_patient("a"), _condition("c1", "a")))
    code, out, _ = _run(capsys, "evaluate", str(tmp_path / "one.json"), "--as-of", "2025-06-30", "--format", "text")
    assert code == 0
    assert "decision:  eligible" in out
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("I1 "))
    assert "Fracture age" in lines[head] and lines[head].endswith("met")
    block = "\n".join(lines[head + 1 : head + 5])
    assert "reason:" in block and "evidence:" in block and "Condition/c1" in block
    assert "source:   LCD L34106, inclusion 1a" in block
    assert "flags:" in out and "T1-T4 level" in out
    assert "\x1b[" not in out
    assert all(line == line.rstrip() for line in lines)
    assert max(len(line) for line in lines) <= 100


def test_render_text_wraps_long_reasons_and_lists_missing():
    record = SimpleNamespace(patient="Patient/x")
    evaluation = _fake_evaluation(record, as_of=date(2025, 6, 30), policy=SimpleNamespace(id="cms-lcd-pva"))
    evaluation["criteria"][0]["reason"] = "word " * 40
    evaluation["missing"] = ["a pain score (LOINC 72514-3) after the fracture"]
    evaluation["flags"] = []
    refs = [f"MedicationRequest/a-rather-long-identifier-{n}" for n in range(6)]
    evaluation["criteria"][0]["evidence"] = refs
    text = render_text(evaluation)
    assert all(ref in text for ref in refs)  # one reference per line, never split
    assert "missing:\n  - a pain score (LOINC 72514-3) after the fracture" in text
    assert "flags: none" in text
    assert max(len(line) for line in text.splitlines()) <= 100
    assert text.endswith("\n")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"resourceType": "Bundle", "entry": [', "invalid JSON"),
        ("", "the file is empty"),
        ({"foo": 1}, "not a FHIR resource"),
        ([1, 2, 3], "not a FHIR resource"),
        (
            _bundle(_patient("z"), _condition("bad-1", "z", onsetDateTime="2025-13-45")),
            "Condition/bad-1 onsetDateTime",
        ),
    ],
    ids=["invalid-json", "empty-file", "not-fhir", "not-an-object", "invalid-resource"],
)
def test_bad_file_is_reported_and_the_good_ones_still_evaluated(tmp_path, capsys, stub_core, content, expected):
    bad = _write(tmp_path / "a-bad.json", content)
    _write(tmp_path / "b-good.json", _bundle(_patient("good"), _condition("c1", "good")))
    code, out, err = _run(capsys, "evaluate", str(tmp_path), "--as-of", "2025-06-30")
    assert code == 2
    assert [json.loads(line)["patient"] for line in out.splitlines()] == ["Patient/good"]
    err_lines = err.splitlines()
    assert len(err_lines) == 1
    assert str(bad) in err_lines[0]
    assert expected in err_lines[0]
    assert "Traceback" not in err


def test_file_without_a_patient_is_reported(tmp_path, capsys, stub_core):
    _write(tmp_path / "a.json", {"resourceType": "Practitioner", "id": "dr"})
    _write(tmp_path / "b.json", _bundle(_patient("b")))
    code, out, err = _run(capsys, "evaluate", str(tmp_path), "--as-of", "2025-06-30")
    assert code == 2
    assert len(out.splitlines()) == 1
    assert err.strip() == f"{tmp_path / 'a.json'}: no patient found (nothing to evaluate)"


def test_missing_file_is_an_input_error(tmp_path, capsys, stub_core):
    _write(tmp_path / "good.json", _bundle(_patient("a")))
    code, out, err = _run(capsys, "evaluate", str(tmp_path / "nope.json"), str(tmp_path / "good.json"),
                          "--as-of", "2025-06-30")
    assert code == 2
    assert len(out.splitlines()) == 1
    assert "nope.json" in err and "no such file" in err


def test_unexpected_exception_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    def boom(record: Any, *, as_of: Any, policy: Any) -> dict[str, Any]:
        if record.patient == "Patient/a":
            raise ZeroDivisionError("secret detail")
        return _fake_evaluation(record, as_of=as_of, policy=policy)

    monkeypatch.setattr(cli, "_evaluate", boom)
    _write(tmp_path / "a.json", _bundle(_patient("a")))
    _write(tmp_path / "b.json", _bundle(_patient("b")))
    code, out, err = _run(capsys, "evaluate", str(tmp_path), "--as-of", "2025-06-30")
    assert code == 2
    assert [json.loads(line)["patient"] for line in out.splitlines()] == ["Patient/b"]
    assert err.strip() == f"fhir-vcf: internal error evaluating {tmp_path / 'a.json'}: ZeroDivisionError"
    assert "Traceback" not in err and "secret" not in err


def test_unknown_policy_exits_2(tmp_path, capsys, stub_core):
    _write(tmp_path / "one.json", _bundle(_patient("a")))
    code, out, err = _run(capsys, "evaluate", str(tmp_path), "--as-of", "2025-06-30", "--policy", "no-such-policy")
    assert code == 2
    assert out == ""
    assert "no-such-policy" in err
    assert stub_core == []


def test_policy_file_that_is_broken_exits_2(tmp_path, capsys, stub_core):
    policy = _write(tmp_path / "mine.yaml", "id: [unclosed\n")
    _write(tmp_path / "one.json", _bundle(_patient("a")))
    code, _, err = _run(capsys, "evaluate", str(tmp_path / "one.json"), "--policy", str(policy))
    assert code == 2
    assert "mine.yaml" in err and "Traceback" not in err


@pytest.mark.parametrize("bad", ["2025-13-45", "30/06/2025", "20250630", "2025-W26-1", "yesterday"])
def test_invalid_as_of_exits_2(tmp_path, capsys, stub_core, bad):
    _write(tmp_path / "one.json", _bundle(_patient("a")))
    code, out, err = _run(capsys, "evaluate", str(tmp_path), "--as-of", bad)
    assert code == 2
    assert out == ""
    assert "--as-of" in err and "YYYY-MM-DD" in err
    assert stub_core == []


def test_empty_directory_exits_2(tmp_path, capsys, stub_core):
    code, _, err = _run(capsys, "evaluate", str(tmp_path))
    assert code == 2
    assert "no Bundle files" in err


def test_policies_lists_the_default(capsys):
    code, out, _ = _run(capsys, "policies")
    assert code == 0
    ids = [line.split()[0] for line in out.splitlines()]
    assert cli.DEFAULT_POLICY in ids


def test_no_command_is_a_usage_error(capsys):
    code, _, err = _run(capsys)
    assert code == 2
    assert "usage" in err


def test_samples_directory_parses_through_the_cli(capsys, stub_core):
    code, out, err = _run(capsys, "evaluate", str(SAMPLES), "--as-of", "2025-06-30")
    assert code == 0, err
    expected = json.loads((SAMPLES / "expected.json").read_text())
    assert len(out.splitlines()) == sum(len(patients) for patients in expected.values())


def test_serve_passes_its_options_to_the_server(monkeypatch):
    import fhir_vcf.server

    calls: list[dict[str, Any]] = []

    def fake_serve(**kwargs: Any) -> int:
        calls.append(kwargs)
        return 0

    monkeypatch.setattr(fhir_vcf.server, "serve", fake_serve)
    assert cli.main(["serve", "--demo", "--port", "9090", "--workers", "2"]) == 0
    (call,) = calls
    assert (call["host"], call["port"], call["workers"], call["demo"]) == ("127.0.0.1", 9090, 2, True)


@pytest.mark.parametrize("argv", [["serve", "--port", "70000"], ["serve", "--workers", "0"]])
def test_serve_rejects_bad_options(capsys, argv):
    assert cli.main(argv) == 2
    assert "invalid" in capsys.readouterr().err


def test_html_format_writes_one_page_with_a_section_per_patient(capsys):
    """`--format html`: the service's explanation page, offline; two patients give two sections."""
    code, out, err = _run(capsys, "evaluate", str(SAMPLES / "two-patients.json"), "--as-of", "2025-06-30",
                          "--format", "html")
    assert code == 0, err
    assert out.startswith("<!doctype html>") and out.rstrip().endswith("</html>")
    assert out.count('<article class="evaluation"') == 2
    assert "<script" not in out and "http://" not in out.split("<body>")[0]  # nothing to fetch: works offline
    assert 'data-criterion="I1"' in out and "LCD L34106, inclusion 1a" in out


def test_text_format_of_real_samples_fits_100_columns_with_source_and_decision_reason(capsys):
    code, out, _ = _run(capsys, "evaluate", str(SAMPLES), "--as-of", "2025-06-30", "--format", "text")
    assert code == 0
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert sum(line.startswith("why:") for line in lines) == sum(line.startswith("patient:") for line in lines) > 20
    assert "source:   LCD L34106, exclusion 11 (relative)" in out
    assert "not-applied" in out  # the malignant route's I1 and I5 (samples/malignant-myeloma-four-levels.json)


# --- version and progress ---------------------------------------------------------------------------


def test_version(capsys):
    from fhir_vcf.version import __version__

    code, out, _ = _run(capsys, "--version")
    assert code == 0 and out.strip() == f"fhir-vcf {__version__}"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _evaluate_many(tmp_path: Path, err: io.StringIO, monkeypatch: pytest.MonkeyPatch,
                   files: int = 6) -> tuple[int, str]:
    for n in range(files):
        _write(tmp_path / f"b{n}.json", _bundle(_patient(f"p{n}"), _condition(f"c{n}", f"p{n}")))
    _write(tmp_path / "broken.json", "{")
    monkeypatch.setattr(cli, "PROGRESS_DELAY_SECONDS", 0)
    out = _Terminal()
    args = cli.build_parser().parse_args(["evaluate", str(tmp_path)])
    return args.handler(args, out, err), out.getvalue()


def test_progress_on_a_terminal_keeps_results_and_errors_clean(tmp_path, monkeypatch, stub_core):
    err = _Terminal()
    code, out = _evaluate_many(tmp_path, err, monkeypatch)
    assert code == 2  # broken.json
    assert [json.loads(line)["patient"] for line in out.splitlines()] == [f"Patient/p{n}" for n in range(6)]
    assert "\r" not in out  # the bar never lands in the results
    progress = err.getvalue()
    assert "evaluate" in progress and "/7" in progress and "file" in progress  # a bar over the 7 files
    assert any(line.startswith(f"{tmp_path / 'broken.json'}: invalid JSON") for line in progress.split("\r"))


def test_no_progress_when_stderr_is_not_a_terminal(tmp_path, monkeypatch, stub_core):
    err = io.StringIO()
    code, out = _evaluate_many(tmp_path, err, monkeypatch)
    assert code == 2 and len(out.splitlines()) == 6
    assert err.getvalue().splitlines() == [
        line for line in err.getvalue().splitlines() if line.startswith(str(tmp_path / "broken.json"))]
    assert len(err.getvalue().splitlines()) == 1
