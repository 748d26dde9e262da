"""Documentation the service serves itself: Swagger UI at /docs (bundled assets, no CDN) and one page
per RFC 9457 problem type, so that every `type` URI of a REST API error resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from api_support import make_app

from fhir_vcf.service import problems

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    return make_app(tmp_path_factory.mktemp("docs")).test_client()


def test_docs_is_swagger_ui_over_openapi_yaml_from_local_assets_only(client) -> None:
    assert client.get("/docs").status_code in {301, 308}  # to /docs/
    page = client.get("/docs/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert '"url": "/openapi.yaml"' in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, "the page loads its scripts and styles"
    assert not [a for a in assets if "//" in a], "every asset is served by the service itself (no CDN)"
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200 and len(response.data) > 100, asset
    assert "SwaggerUIBundle" in client.get("/docs/swagger-ui-bundle.js").get_data(as_text=True)


def test_assets_outside_the_bundle_are_not_served(client) -> None:
    for path in ("/docs/../app.py", "/docs/%2e%2e/app.py", "/docs/no-such.js"):
        response = client.get(path)
        assert response.status_code == 404 and response.mimetype == "application/problem+json", path


@pytest.mark.parametrize("problem_type", sorted(problems.PROBLEM_TYPES.values(), key=lambda t: t.name),
                         ids=lambda t: t.name)
def test_every_problem_type_uri_resolves_to_its_page(client, problem_type: problems.ProblemType) -> None:
    response = client.get(problem_type.uri)
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert problem_type.title in html and f"<code>{problem_type.uri}</code>" in html
    for member in problem_type.members:
        assert f"<code>{member}</code>" in html
    index = client.get(problems.PROBLEMS_PATH).get_data(as_text=True)
    assert f'id="{problem_type.name}"' in index


def test_the_document_names_exactly_the_served_problem_types() -> None:
    document = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    described = set(re.findall(r"`(/problems/[a-z-]+)`", document["components"]["schemas"]["Problem"]["properties"]
                               ["type"]["description"]))
    assert described == {t.uri for t in problems.PROBLEM_TYPES.values()}
    constants = {getattr(problems, name) for name in dir(problems) if name.startswith("TYPE_")}
    assert constants - {problems.TYPE_BLANK} == described


def test_a_real_error_names_a_type_that_resolves(client) -> None:
    error = client.get("/api/v1/patients/p-tanaka/evaluation?asOf=30-06-2025")
    assert error.mimetype == "application/problem+json"
    assert client.get(error.get_json()["type"]).status_code == 200
    unknown = client.get("/problems/no-such-type")
    assert unknown.status_code == 404 and unknown.get_json()["type"] == problems.TYPE_NOT_FOUND


def test_descriptions_are_escaped(client) -> None:
    html = client.get(problems.PROBLEMS_PATH).get_data(as_text=True)
    assert "<code>FHIR_VCF_MAX_BODY_BYTES</code>" in html and "`" not in html


# --- the guides ---------------------------------------------------------------------------------------

GUIDES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shell_blocks(markdown: str) -> list[str]:
    """The fenced blocks marked bash or sh: the commands a reader copies."""
    blocks, current, language = [], None, ""
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            if current is None:
                current, language = [], line.strip().strip("`").strip()
            else:
                if language in {"bash", "sh"}:
                    blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_guides_use_scratch_folders_and_one_port(guide: Path) -> None:
    """A newcomer runs the guides' commands as printed: scratch files in a `mktemp -d` folder (never a
    fixed /tmp path another user or run may hold), and one port, 8080, the one `serve` prints."""
    for block in shell_blocks(guide.read_text()):
        assert "/tmp/" not in block, f"{guide.name}: a fixed /tmp path; use WORK=$(mktemp -d)"
        written = re.findall(r"(?<![0-9&-])> *([\w./-]+)", block)  # `> file`: not `2>`, `&>` or `->`
        assert not [w for w in written if w != "/dev/null"], f"{guide.name}: writes {written}; into \"$WORK/...\""
        ports = set(re.findall(r"(?:127\.0\.0\.1|localhost):(\d+)", block)) | set(re.findall(r"--port (\d+)", block))
        assert ports <= {"8080"}, f"{guide.name}: ports {sorted(ports)}; the guides use 8080 only"
        if "$WORK" in block:
            text = guide.read_text()
            assert "WORK=$(mktemp -d)" in text, f"{guide.name}: $WORK used but never made"
