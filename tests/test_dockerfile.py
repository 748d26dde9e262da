"""The Dockerfile, read as text (no Docker engine needed): the promises the image makes.

Multi-stage (hash-checked wheels gathered in the first stage, installed in the second), a base
image pinned by digest, every package from requirements.lock with its hashes (and the lock true to
pyproject.toml), a non-root user, a health check without curl that really answers against a
running service, one port variable for the bind, EXPOSE and HEALTHCHECK, configuration only
through FHIR_VCF_* variables, no secrets, and a CMD that names a console script and sub-command
that exist.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"
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


def test_base_is_python_3_11_slim_pinned_by_digest():
    base = args_default("PYTHON_IMAGE")
    assert base is not None and re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", base), base
    assert all(stage[0][1].startswith("${PYTHON_IMAGE}") for stage in stages())


def locked() -> dict[str, tuple[str, list[str]]]:
    """requirements.lock: name → (version, hashes)."""
    found: dict[str, tuple[str, list[str]]] = {}
    text = LOCK.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        assert not line.startswith("-"), f"an option in the lock (an index or find-links?): {line}"
        spec, *options = line.split()
        name, _, version = spec.partition("==")
        assert version, f"not pinned: {line}"
        found[canonicalize_name(name)] = (version, [o.split("=", 1)[1] for o in options if o.startswith("--hash=")])
    return found


def test_the_lock_pins_every_package_with_hashes():
    packages = locked()
    assert packages
    for name, (_version, hashes) in packages.items():
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), name
    assert "Python 3.11" in LOCK.read_text().split("\n", 3)[1]  # resolved for the image's Python


def test_the_lock_satisfies_pyproject():
    """Regenerate with the command at the top of requirements.lock when pyproject's dependencies change."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    packages = locked()
    for text in [*project["dependencies"], *project["optional-dependencies"]["postgres"]]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in packages, f"{name} is not in requirements.lock"
        assert requirement.specifier.contains(packages[name][0], prereleases=True), (name, packages[name][0])
        for extra in requirement.extras:  # psycopg[binary] → psycopg-binary, pyjwt[crypto] → cryptography
            for needed in metadata.requires(requirement.name) or ():
                dependency = Requirement(needed)
                marker = dependency.marker
                if marker and marker.evaluate({"extra": extra}) and not marker.evaluate({"extra": ""}):
                    assert canonicalize_name(dependency.name) in packages, f"{name}[{extra}]: {dependency.name}"


def test_the_image_installs_only_the_locked_hash_checked_files():
    build, runtime = stages()[0], stages()[-1]
    fetch = [r for w, r in build if w == "RUN" and "pip download" in r]
    assert fetch and "--require-hashes" in fetch[0] and "-r requirements.lock" in fetch[0]
    assert any(w == "COPY" and "requirements.lock" in r.split() for w, r in build)
    (install,) = [r for w, r in runtime if w == "RUN" and "pip install" in r]
    first, second = install.split("&&")
    assert "--require-hashes" in first and "requirements.lock" in first and "--no-index" in first
    assert "--no-deps" in second and "fhir-vcf" in second  # our own wheel adds nothing unlocked


def test_runs_as_a_non_root_user():
    users = [r for w, r in stages()[-1] if w == "USER"]
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def healthcheck_argv() -> list[str]:
    (check,) = [r for w, r in stages()[-1] if w == "HEALTHCHECK"]
    return json.loads(check.split(" CMD ", 1)[1])


def test_healthcheck_uses_python_against_healthz():
    checks = [r for w, r in stages()[-1] if w == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "/healthz" in checks[0] and "urllib" in checks[0]
    assert "curl" not in checks[0] and "wget" not in checks[0]


def test_port_bind_expose_and_healthcheck_come_from_one_variable():
    runtime = stages()[-1]
    assert args_default("PORT") == "8080"
    assert env_vars(runtime)["FHIR_VCF_PORT"] == "${PORT}"
    assert ("EXPOSE", "${FHIR_VCF_PORT}") in runtime
    assert "FHIR_VCF_PORT" in healthcheck_argv()[-1] and "8080" not in healthcheck_argv()[-1]
    (cmd,) = [r for w, r in runtime if w == "CMD"]
    assert "--port" not in json.loads(cmd)  # serve reads FHIR_VCF_PORT


def test_the_cmd_leaves_serving_settings_to_the_environment():
    """Workers, threads and the rest come from FHIR_VCF_* at run time: the CMD fixes only the address."""
    (cmd,) = [r for w, r in stages()[-1] if w == "CMD"]
    assert json.loads(cmd) == ["fhir-vcf", "serve", "--host", "0.0.0.0"]


def test_the_healthcheck_command_answers_against_a_running_service(tmp_path):
    from werkzeug.serving import make_server

    from fhir_vcf import create_app

    app = create_app({"database_url": f"sqlite:///{tmp_path / 'hc.db'}"})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    argv = [sys.executable, *healthcheck_argv()[1:]]  # the image's `python`
    try:
        up = subprocess.run(argv, env={"FHIR_VCF_PORT": str(server.server_port)}, capture_output=True, timeout=30,
                            check=False)
        assert up.returncode == 0, up.stderr
    finally:
        server.shutdown()
        thread.join(5)
    down = subprocess.run(argv, env={"FHIR_VCF_PORT": str(server.server_port)}, capture_output=True, timeout=30,
                          check=False)
    assert down.returncode != 0


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
    assert args.command == "serve" and args.host == "0.0.0.0" and args.port is None  # FHIR_VCF_PORT


def test_serve_listens_on_fhir_vcf_port(monkeypatch):
    from fhir_vcf import cli, server

    seen = []
    monkeypatch.setattr(server, "serve", lambda **kwargs: seen.append(kwargs["port"]) or 0)
    monkeypatch.setenv("FHIR_VCF_PORT", "9123")
    assert cli.main(["serve"]) == 0
    assert cli.main(["serve", "--port", "9200"]) == 0  # the option wins
    monkeypatch.delenv("FHIR_VCF_PORT")
    assert cli.main(["serve"]) == 0
    assert seen == [9123, 9200, 8080]
    monkeypatch.setenv("FHIR_VCF_PORT", "eighty")
    assert cli.main(["serve"]) == 2


@pytest.mark.parametrize("pattern", [".git", ".venv", "**/*.pem", ".env", "var", "tests"])
def test_dockerignore_keeps_the_context_small_and_secret_free(pattern):
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert pattern in lines
