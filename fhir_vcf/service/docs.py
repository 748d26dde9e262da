"""Documentation served by the service itself: the API explorer at `/docs` and the problem types.

- `/docs/`: Swagger UI over `/openapi.yaml` (the one API description). The page, scripts and
  styles come from the `flask-swagger-ui` package's bundled copy of Swagger UI: nothing is fetched
  from a CDN, so it works offline and on a locked-down network.
- `/problems` and `/problems/{name}`: what each RFC 9457 `type` the REST API answers with means
  and what to do about it (`fhir_vcf.service.problems.PROBLEM_TYPES`), so that the `type` URI of
  an error resolves to documentation, as RFC 9457 asks of it.
"""

from __future__ import annotations

import re

from flask import Blueprint, Flask, Response, render_template
from flask_swagger_ui import get_swaggerui_blueprint
from markupsafe import Markup, escape

from fhir_vcf.service import problems

DOCS_PATH = "/docs"

bp = Blueprint("docs", __name__, template_folder="templates")


def _code(text: str) -> Markup:
    """`x` in a description as <code>x</code> (the text is escaped first)."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


bp.add_app_template_filter(_code, "code")


def _page(heading: str, types: list[problems.ProblemType], *, single: bool) -> Response:
    html = render_template("problems.html", heading=heading, types=types, single=single,
                           index=problems.PROBLEMS_PATH, docs=DOCS_PATH + "/")
    return Response(html, mimetype="text/html")


@bp.get(problems.PROBLEMS_PATH)
def problem_types() -> Response:
    return _page("Problem types", list(problems.PROBLEM_TYPES.values()), single=False)


@bp.get(problems.PROBLEMS_PATH + "/<name>")
def problem_type(name: str) -> Response:
    found = problems.PROBLEM_TYPES.get(name)
    if found is None:
        return problems.problem(404, f"no problem type {name[:80]!r}; see {problems.PROBLEMS_PATH}",
                                type_=problems.TYPE_NOT_FOUND)
    return _page(f"Problem type: {found.title}", [found], single=True)


def init_app(app: Flask) -> None:
    """Register the problem pages and Swagger UI (its own blueprint, from flask-swagger-ui)."""
    app.register_blueprint(bp)
    app.register_blueprint(
        get_swaggerui_blueprint(
            DOCS_PATH, "/openapi.yaml", blueprint_name="swagger_ui",
            config={"app_name": "fhir-vcf API", "deepLinking": True, "validatorUrl": None},
        )
    )


__all__ = ["DOCS_PATH", "bp", "init_app"]
