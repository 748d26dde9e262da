"""The Dockerfile, read as text (no Docker engine needed): the promises the image makes.

Multi-stage (a wheel built in the first stage, installed in the second), a non-root user, a
health check without curl, configuration only through FHIR_VCF_* variables, no secrets, and a
CMD that names a console script and sub-command that exist.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|PRIVATE_KEY|API_KEY|CREDENTIAL", re.I)


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    logical, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        logical.append(current)
        current = ""
    found = []
    for line in logical:
        word, _, rest = line.partition(" ")
        found.append((word.upper(), rest.strip()))
    return found


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def args_default(name: str) -> str | None:
    for word, rest in instructions():
        if word == "ARG" and rest.startswith(name + "="):
            return rest.split("=", 1)[1]
    return None


def env_vars(stage: list[tuple[str, str]]) -> dict[str, str]:
    found = {}
    for word, rest in stage:
        if word == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                found[name] = value
    return found


def test_multi_stage_wheel_build_then_install():
    build, runtime = stages()[0], stages()[-1]
    assert len(stages()) >= 2
    assert build[0][1].endswith("AS build")
    assert any(w == "RUN" and "pip wheel" in r for w, r in build)
    installs = [r for w, r in runtime if w == "RUN" and "pip install" in r]
    assert installs and all("from=build" in r and "--no-index" in r for r in installs)


def test_base_is_python_3_11_slim():
    base = args_default("PYTHON_IMAGE")
    assert base == "python:3.11-slim"
    assert all(stage[0][1].startswith("${PYTHON_IMAGE}") for stage in stages())


def test_runs_as_a_non_root_user():
    users = [r for w, r in stages()[-1] if w == "USER"]
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_healthcheck_uses_python_against_healthz():
    checks = [r for w, r in stages()[-1] if w == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "/healthz" in checks[0] and "urllib" in checks[0]
    assert "curl" not in checks[0] and "wget" not in checks[0]


def test_exposes_8080_and_a_var_volume():
    runtime = stages()[-1]
    assert ("EXPOSE", "8080") in runtime
    volumes = [r for w, r in runtime if w == "VOLUME"]
    assert volumes and "/app/var" in volumes[0]
    assert env_vars(runtime)["FHIR_VCF_DATABASE_URL"].startswith("sqlite:////app/var/")


def test_configuration_only_through_fhir_vcf_variables_and_no_secrets():
    for stage in stages():
        for name in env_vars(stage):
            assert name.startswith(("FHIR_VCF_", "PYTHON", "PIP_")), name
            assert not SECRET_NAME.search(name), f"secret-like ENV {name}"
    for word, rest in instructions():
        if word == "ARG":
            assert not SECRET_NAME.search(rest), rest
        if word in {"COPY", "ADD"}:
            assert not re.search(r"\.pem|\.key|\.env\b|id_rsa", rest), rest


def test_copied_sources_exist():
    for word, rest in instructions():
        if word != "COPY" or "--from" in rest:
            continue
        parts = [p for p in rest.split() if not p.startswith("--")]
        for source in parts[:-1]:
            assert (ROOT / source).exists(), f"COPY source {source} does not exist"


def test_demo_dir_is_the_copied_samples():
    runtime = stages()[-1]
    demo_dir = env_vars(runtime)["FHIR_VCF_DEMO_DIR"]
    assert any(w == "COPY" and r.split()[-1].rstrip("/") == demo_dir for w, r in runtime)


def test_cmd_is_an_existing_console_script_and_subcommand():
    cmds = [r for w, r in stages()[-1] if w == "CMD"]
    assert len(cmds) == 1
    argv = json.loads(cmds[0])  # the exec form: signals reach gunicorn, no shell in between
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert argv[0] in scripts
    from fhir_vcf.cli import build_parser

    args = build_parser().parse_args(argv[1:])
    assert args.command == "serve" and args.host == "0.0.0.0" and args.port == 8080


@pytest.mark.parametrize("pattern", [".git", ".venv", "**/*.pem", ".env", "var", "tests"])
def test_dockerignore_keeps_the_context_small_and_secret_free(pattern):
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert pattern in lines
