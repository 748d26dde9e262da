"""A FHIR Bulk Data `$export` client: kick off, poll, download, and resume after an interruption.

Follows the Bulk Data Access IG (hl7.org/fhir/uv/bulkdata, "Bulk Data Export Operation Request
Flow"):
- kick-off `GET [base]/$export`, `[base]/Patient/$export` or `[base]/Group/[id]/$export` with
  `Accept: application/fhir+json` and `Prefer: respond-async`; `202 Accepted` and a
  `Content-Location` (the status URL) start the job; `4xx/5xx` carry an OperationOutcome; `429` asks to
  wait (`Retry-After`) before starting another export;
- status `GET [Content-Location]`: `202` in progress (`X-Progress`, `Retry-After`; without it, an
  exponential backoff), `429` polling too often (wait `Retry-After`), `200` the completion manifest,
  `4xx/5xx` the export failed (OperationOutcome) unless its issue code is transient;
- each output file `GET url` with `Accept: application/fhir+ndjson`, with the access token only when
  the manifest says `requiresAccessToken` (and only to the FHIR server's own origin);
- a finished job's files are released with `DELETE [Content-Location]`.

Auth is SMART Backend Services (`fhir_vcf.sources.smart_backend.SmartBackendAuth`) or any callable
returning a bearer token; a `401` makes the client drop the cached token and retry once with a fresh
one. The token never reaches a log, an error or the state file.

Resume: the state (`export-state.json`: kick-off URL, status URL, manifest, files done) is written
after every step, so a run killed at any point continues where it stopped: polling the same job,
skipping files already complete, and finishing a partial file with a `Range` request when the file
server honours it (else downloading it again).
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from fhir_vcf.errors import ConfigError, UpstreamError

log = logging.getLogger(__name__)

STATE_FILE = "export-state.json"
LEVELS = ("system", "patient", "group")
TRANSIENT_ISSUES = frozenset({"transient", "lock-error", "no-store", "exception", "timeout", "incomplete",
                              "throttled"})  # FHIR IssueType "transient" and its children
MIN_WAIT, MAX_WAIT = 1.0, 300.0  # seconds between polls: backoff floor, and the cap on any Retry-After
DOWNLOAD_BLOCK = 1024 * 1024

TokenSource = Callable[[], str | None] | str | None


@dataclass
class ExportResult:
    folder: Path
    files: list[Path]
    errors: list[Path]
    transaction_time: str | None


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def outcome_text(body: Any) -> tuple[str, set[str]]:
    """The human text and the issue codes of an OperationOutcome (or '' when the body is none)."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return "", set()
    texts, codes = [], set()
    for issue in body.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        codes.add(str(issue.get("code", "")))
        details = issue.get("details") if isinstance(issue.get("details"), dict) else {}
        text = issue.get("diagnostics") or details.get("text") or issue.get("code")
        if text:
            texts.append(str(text)[:300])
    return "; ".join(texts), codes


def _printable(text: str, limit: int = 100) -> str:
    """X-Progress is the server's free text: keep it short and free of control characters."""
    return re.sub(r"[\x00-\x1f\x7f]", " ", text)[:limit]


class BulkExportClient:
    """One server's `$export`, with the polling and download rules of the Bulk Data IG."""

    def __init__(
        self,
        base_url: str,
        *,
        token: TokenSource = None,
        invalidate: Callable[[], None] | None = None,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = (5.0, 60.0),
        max_wait: float = 24 * 3600.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        if urlsplit(base_url).scheme not in ("http", "https"):
            raise ConfigError(f"not a FHIR server base URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._invalidate = invalidate or getattr(token, "invalidate", None)
        self.timeout = timeout
        self.max_wait = max_wait
        self.sleep = sleep
        self.clock = clock
        self.on_progress = on_progress or (lambda text: None)
        self.session = session or requests.Session()
        # Network failures and gateway errors of GETs are retried by urllib3, never by hand; 429 and
        # the status codes of the export protocol are the protocol's and are handled below.
        retry = Retry(total=3, connect=3, read=3, status=3, backoff_factor=0.5, status_forcelist=(502, 504),
                      allowed_methods=frozenset({"GET"}), raise_on_status=False, respect_retry_after_header=False)
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.origin = _origin(self.base_url)

    # -- requests ---------------------------------------------------------------------------

    def _bearer(self) -> str | None:
        return self._token() if callable(self._token) else self._token

    def _send(self, method: str, url: str, *, accept: str, auth: bool = True, headers: dict[str, str] | None = None,
              stream: bool = False) -> requests.Response:
        """One request; a 401 with a token source that can refresh is retried once with a new token.

        The token goes only to the FHIR server's own origin (a status URL or file URL elsewhere is
        called without it), and a request that carries it follows no redirect (a 3xx is an error), so
        that a hostile manifest or Content-Location cannot collect it.
        """
        auth = auth and _origin(url) == self.origin
        for attempt in (1, 2):
            sent = {"Accept": accept, **(headers or {})}
            token = self._bearer() if auth else None
            if token:
                sent["Authorization"] = f"Bearer {token}"
            try:
                response = self.session.request(method, url, headers=sent, timeout=self.timeout, stream=stream,
                                                allow_redirects=not token)
            except requests.Timeout:
                raise UpstreamError(f"Bulk export: {_host(url)} timed out", timeout=True) from None
            except requests.RequestException as exc:
                raise UpstreamError(f"Bulk export: {_host(url)} unreachable ({type(exc).__name__})") from None
            if response.status_code == 401 and token and attempt == 1 and self._invalidate is not None:
                log.info("Bulk export: access token refused; fetching a new one")
                response.close()
                self._invalidate()
                continue
            return response
        return response

    def _fail(self, what: str, response: requests.Response) -> UpstreamError:
        text, _ = outcome_text(_json(response))
        detail = f": {text}" if text else ""
        return UpstreamError(
            f"Bulk export {what} failed: {_host(response.url)} answered {response.status_code}{detail}",
            upstream_status=response.status_code)

    # -- the flow ---------------------------------------------------------------------------

    def kickoff_url(self, level: str = "patient", group: str | None = None, types: Sequence[str] = (),
                    since: str | None = None) -> str:
        if level not in LEVELS:
            raise ConfigError(f"export level must be one of {', '.join(LEVELS)}")
        if level == "group" and not group:
            raise ConfigError("a Group-level export needs the Group id")
        path = {"system": "$export", "patient": "Patient/$export", "group": f"Group/{group}/$export"}[level]
        params = {"_outputFormat": "application/fhir+ndjson"}
        if types:
            params["_type"] = ",".join(types)
        if since:
            params["_since"] = since
        return f"{self.base_url}/{path}?{urlencode(params, safe=',$/:')}"

    def kick_off(self, url: str) -> str:
        """Start the export; the status URL. A 429 (another export running) is waited out."""
        deadline = self.clock() + self.max_wait
        wait = MIN_WAIT
        while True:
            response = self._send("GET", url, accept="application/fhir+json", headers={"Prefer": "respond-async"})
            if response.status_code == 202:
                location = response.headers.get("Content-Location")
                if not location:
                    raise UpstreamError("Bulk export kick-off answered 202 without a Content-Location",
                                        upstream_status=202)
                return location if "://" in location else f"{self.base_url}/{location.lstrip('/')}"
            if response.status_code == 429:
                wait = self._wait(response, wait, deadline, "kick-off")
                continue
            raise self._fail("kick-off", response)

    def poll(self, status_url: str) -> dict[str, Any]:
        """Poll until the manifest; raises UpstreamError when the export fails or takes too long."""
        deadline = self.clock() + self.max_wait
        wait = MIN_WAIT
        while True:
            response = self._send("GET", status_url, accept="application/json")
            status = response.status_code
            if status == 200:
                return _manifest(response)
            if status == 202:
                progress = response.headers.get("X-Progress")
                if progress:
                    self.on_progress(_printable(progress))
                wait = self._wait(response, wait, deadline, "status")
                continue
            if status == 429:
                wait = self._wait(response, wait, deadline, "status")
                continue
            _, codes = outcome_text(_json(response))
            if status >= 500 and codes & TRANSIENT_ISSUES:  # a failed poll, not a failed export (IG)
                wait = self._wait(response, wait, deadline, "status")
                continue
            raise self._fail("status request", response)

    def _wait(self, response: requests.Response, wait: float, deadline: float, what: str) -> float:
        """Sleep as the server asks (Retry-After, capped) or back off exponentially; the next backoff."""
        asked = retry_after(response.headers.get("Retry-After"), self.clock())
        delay = min(asked, MAX_WAIT) if asked is not None else wait
        if self.clock() + delay > deadline:
            raise UpstreamError(f"Bulk export {what}: no manifest after {self.max_wait:.0f} s; giving up",
                                timeout=True)
        self.sleep(delay)
        return min(wait * 2, MAX_WAIT)

    def download(self, url: str, target: Path, *, with_token: bool) -> Path:
        """One output file, to `target`; a `.part` left by an interrupted run is continued."""
        partial = target.with_name(target.name + ".part")
        have = partial.stat().st_size if partial.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        if with_token and _origin(url) != self.origin:
            log.warning("Bulk export: output file on another origin; downloading it without the access token")
        response = self._send("GET", url, accept="application/fhir+ndjson", auth=with_token, headers=headers,
                              stream=True)
        if response.status_code not in (200, 206):
            raise self._fail(f"download of {Path(urlsplit(url).path).name}", response)
        mode = "ab" if response.status_code == 206 and have else "wb"
        try:
            with open(partial, mode) as fh:
                for block in response.iter_content(DOWNLOAD_BLOCK):
                    fh.write(block)
        except requests.RequestException as exc:
            raise UpstreamError(f"Bulk export: download from {_host(url)} broke off ({type(exc).__name__}); "
                                "run again to resume") from None
        os.replace(partial, target)
        return target

    def delete(self, status_url: str) -> None:
        """Tell the server the files are no longer needed (best effort: its failure loses nothing)."""
        try:
            self._send("DELETE", status_url, accept="application/fhir+json").close()
        except UpstreamError:
            log.info("Bulk export: the DELETE of the finished job failed; the server will expire it")

    def export(self, folder: str | Path, *, level: str = "patient", group: str | None = None,
               types: Sequence[str] = (), since: str | None = None) -> ExportResult:
        """Run (or resume) an export into `folder`: NDJSON files named `Type.NNN.ndjson`."""
        root = Path(folder)
        root.mkdir(parents=True, exist_ok=True)
        state_path = root / STATE_FILE
        url = self.kickoff_url(level, group, types, since)
        state = _read_state(state_path)
        if state.get("request") != url:  # another export asked for: start afresh
            state = {"request": url}
        if "status" not in state:
            state["status"] = self.kick_off(url)
            _write_state(state_path, state)
        if "manifest" not in state:
            state["manifest"] = self.poll(state["status"])
            state["done"] = []
            _write_state(state_path, state)
        manifest = state["manifest"]
        with_token = bool(manifest.get("requiresAccessToken"))
        done = set(state.get("done", []))
        files, errors = [], []
        for kind, items in (("output", manifest.get("output", [])), ("error", manifest.get("error", []))):
            for i, item in enumerate(items):
                name = f"{_safe(item['type'])}.{i:03d}.ndjson"
                target = (root / name) if kind == "output" else (root / "errors" / name)
                target.parent.mkdir(exist_ok=True)
                key = f"{kind}:{name}"
                if key not in done or not target.exists():
                    self.download(item["url"], target, with_token=with_token)
                    done.add(key)
                    state["done"] = sorted(done)
                    _write_state(state_path, state)
                (files if kind == "output" else errors).append(target)
        if not state.get("deleted"):
            self.delete(state["status"])
            state["deleted"] = True
            _write_state(state_path, state)
        return ExportResult(root, files, errors, manifest.get("transactionTime"))


def _manifest(response: requests.Response) -> dict[str, Any]:
    body = _json(response)
    if not isinstance(body, dict) or not isinstance(body.get("output"), list):
        raise UpstreamError("Bulk export: the completion manifest is not JSON with an `output` array",
                            upstream_status=200)
    for key in ("output", "error"):
        items = body.get(key) or []
        if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("url"), str)
                                                  and isinstance(i.get("type"), str) for i in items):
            raise UpstreamError(f"Bulk export: manifest `{key}` items need a `type` and a `url`", upstream_status=200)
        for item in items:
            if urlsplit(item["url"]).scheme not in ("http", "https"):
                raise UpstreamError("Bulk export: a manifest file URL is not http(s)", upstream_status=200)
    return {"transactionTime": body.get("transactionTime"), "requiresAccessToken": body.get("requiresAccessToken"),
            "output": body["output"], "error": body.get("error") or []}


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _safe(rtype: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", rtype) or "Unknown"


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")
    os.replace(tmp, path)
