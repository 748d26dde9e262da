"""Pages for people: the explanation page a card links to, and the CDS committee's governance view.

A transport only: it finds the kept evaluation (`fhir_vcf.kept`) and the numbers
(`fhir_vcf.governance`), and the outputs layer renders them (`outputs/page.py`,
`outputs/governance.py`). Every page that shows patient data needs a credential:

- `GET /explanations/<token>`: the token is the credential (a signed, expiring link made when the
  card was; docs/explanation-pages.md). Unknown, expired, tampered, or pages switched off: the same
  plain 404 page, with no patient data and no hint of which.
- `GET /governance`, `GET /governance/summary.json`: the admin token (`FHIR_VCF_ADMIN_TOKEN`), sent as
  `Authorization: Bearer <token>` or, for a browser, through `POST /governance` (a form) that sets a
  signed, HttpOnly, SameSite=Strict session cookie for 8 hours. Unset token: the view does not exist.

Every answer here carries `Cache-Control: no-store`, `Referrer-Policy: no-referrer` (a link's token
must not travel to the policy site a reader clicks next), `X-Robots-Tag: noindex`, a
Content-Security-Policy that allows nothing but the page's own inline stylesheet, and no framing.
The request log names the route template (`/explanations/<path:token>`), never the token.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, redirect, request
from itsdangerous import BadData, URLSafeTimedSerializer

from fhir_vcf.service import problems
from fhir_vcf.store import StoreError

log = logging.getLogger(__name__)

bp = Blueprint("pages", __name__)

HTML = "text/html; charset=utf-8"
SESSION_COOKIE = "fhir_vcf_admin"
SESSION_SECONDS = 8 * 3600  # a committee meeting, not a week
_SESSION_SALT = "fhir-vcf governance session"


def _services() -> Any:
    from fhir_vcf.service.registry import services

    return services()


def _secure(response: Response) -> Response:
    """The headers every page here carries (see the module docstring)."""
    from fhir_vcf.outputs.page import content_security_policy

    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = content_security_policy()
    return response


def _html(body: str, status: int = 200) -> Response:
    return _secure(Response(body, status=status, content_type=HTML))


def not_found_page() -> Response:
    from fhir_vcf.outputs.page import render_not_found

    return _html(render_not_found(), 404)


# --- the explanation page --------------------------------------------------------------------------


def keep_for_pages(evaluations: list[Mapping[str, Any]], source: str) -> list[tuple[str, str] | None]:
    """Keep each evaluation for its explanation page: (id, signed page URL), or None when pages are
    off or the store fails (the card is still answered, without the link; the failure is logged)."""
    from fhir_vcf.service.registry import services

    svc = services()
    if svc.kept is None or svc.links is None:
        return [None] * len(evaluations)
    base = (svc.settings.public_base_url or request.url_root).rstrip("/")
    out: list[tuple[str, str] | None] = []
    for evaluation in evaluations:
        try:
            evaluation_id = svc.kept.keep(evaluation, source=source)
        except StoreError:
            log.exception("could not keep the evaluation for its explanation page")
            out.append(None)
            continue
        out.append((evaluation_id, f"{base}/explanations/{svc.links.token(evaluation_id)}"))
    return out


def with_page_links(evaluations: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """The REST API's evaluations, each kept and given `evaluationId` and `explanationUrl` (added
    fields of the evaluation object, service only) when pages are on."""
    for evaluation, kept in zip(evaluations, keep_for_pages(evaluations, source), strict=True):
        if kept is not None:
            evaluation["evaluationId"], evaluation["explanationUrl"] = kept
    return evaluations



@bp.get("/explanations/<path:token>")
def explanation(token: str) -> Response:
    """The kept evaluation the link names, as the explanation page; anything else: the plain 404."""
    svc = _services()
    if svc.kept is None or svc.links is None:
        return not_found_page()
    evaluation_id = svc.links.evaluation_id(token)
    if evaluation_id is None:
        return not_found_page()
    try:
        kept = svc.kept.get(evaluation_id)
    except StoreError:
        log.exception("could not read a kept evaluation")
        return _html(_unavailable(), 503)
    if kept is None:
        return not_found_page()
    from fhir_vcf.outputs.page import PageNote, render_page

    note = PageNote(
        meta_line=f"Evaluation {kept.id[:8]} · {kept.source} · {kept.created:%Y-%m-%d %H:%M} UTC · "
                  f"kept until {kept.expires:%Y-%m-%d}",
    )
    return _html(render_page([kept.evaluation], note))


def _unavailable() -> str:
    from fhir_vcf.outputs.governance import render_message

    return render_message("Temporarily unavailable", "The explanation cannot be read right now. Try again shortly.")


# --- the governance view ---------------------------------------------------------------------------


def _admin_token() -> str | None:
    return _services().settings.admin_token


def _sessions(token: str) -> URLSafeTimedSerializer:
    # Keyed by the admin token itself: changing the token ends every session.
    return URLSafeTimedSerializer(token, salt=_SESSION_SALT, signer_kwargs={"digest_method": hashlib.sha256})


def _is_admin(token: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() == "bearer" and presented and hmac.compare_digest(presented.strip().encode(), token.encode()):
        return True
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return False
    try:
        return _sessions(token).loads(cookie, max_age=SESSION_SECONDS) == "admin"
    except BadData:
        return False


def _weeks() -> int:
    try:
        weeks = int(request.args.get("weeks", "12"))
    except ValueError:
        weeks = 12
    return max(1, min(weeks, 104))


def _summary() -> dict[str, Any]:
    from fhir_vcf.governance import summary

    return summary(_services().store, weeks=_weeks(), now=datetime.now(UTC).replace(tzinfo=None))


@bp.get("/governance")
def governance() -> Response:
    token = _admin_token()
    if token is None:
        return not_found_page()
    from fhir_vcf.outputs.governance import render_governance, render_login

    if not _is_admin(token):
        return _html(render_login(), 401)
    try:
        return _html(render_governance(_summary()))
    except StoreError:
        log.exception("could not read the governance numbers")
        return _html(_unavailable(), 503)


@bp.post("/governance")
def governance_login() -> Response:
    """The browser's way in: a form posts the admin token; a session cookie is the answer."""
    token = _admin_token()
    if token is None:
        return not_found_page()
    from fhir_vcf.outputs.governance import render_login

    presented = request.form.get("token", "")
    if not presented or not hmac.compare_digest(presented.encode(), token.encode()):
        return _html(render_login(failed=True), 401)
    response = redirect("/governance", code=303)
    response.set_cookie(SESSION_COOKIE, _sessions(token).dumps("admin"), max_age=SESSION_SECONDS, httponly=True,
                        samesite="Strict", secure=request.is_secure, path="/governance")
    return _secure(response)


@bp.get("/governance/summary.json")
def governance_json() -> Response:
    """The governance numbers as JSON: the same the charts draw."""
    token = _admin_token()
    if token is None:
        return _secure(problems.problem(404, "no governance view on this service (FHIR_VCF_ADMIN_TOKEN unset)"))
    if not _is_admin(token):
        response = problems.problem(401, "the governance numbers need the admin token (Authorization: Bearer ...)",
                                    title="Unauthorized")
        response.headers["WWW-Authenticate"] = 'Bearer realm="fhir-vcf governance"'
        return _secure(response)
    try:
        return _secure(jsonify(_summary()))
    except StoreError:
        log.exception("could not read the governance numbers")
        return _secure(problems.problem(503, "the database is unavailable; try again shortly"))
