"""A bad number on any command line is refused with a message naming it and exit 2, never a traceback."""

from __future__ import annotations

import pytest

from fhir_vcf.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--port", "0"], "invalid port '0': expected 1-65535"),
        (["serve", "--port", "70000"], "invalid port '70000': expected 1-65535"),
        (["serve", "--workers", "two"], "invalid worker count 'two': expected 1 or more"),
        (["synth", "--patients", "-3", "--out", "x"], "invalid number '-3': expected 1 or more"),
        (["synth", "--patients", "5", "--vcf-share", "1.5", "--out", "x"],
         "invalid share '1.5': expected a number from 0 to 1"),
    ],
)
def test_a_bad_number_is_named_and_refused(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
