"""A small FHIR REST client with the timeouts, retries and paging a 5-second budget allows.

Retries are urllib3's (idempotent GETs only, on 429/502/503/504, with backoff and a capped
Retry-After); nothing here hand-rolls retry logic. The bearer token is held only for the
Authorization header: it is never logged, stored, or put in an error message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from fhir_vcf.errors import NotFoundError, UpstreamError
from fhir_vcf.metrics import FHIR_ERRORS, FHIR_LATENCY

log = logging.getLogger(__name__)

TokenSource = str | Callable[[], str | None] | None

RETRY_STATUSES = (429, 502, 503, 504)


class _CappedRetry(Retry):
    """Honour Retry-After, but never wait longer than the call budget allows."""

    max_retry_after = 1.0

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        return None if value is None else min(value, self.max_retry_after)


class FhirClient:
    """Read and search one FHIR server.

    `token` is a bearer token, or a callable returning one (SMART Backend Services refreshes its
    token that way), or None for an open server. `timeout` is (connect, read) seconds per attempt;
    `max_pages` caps how many `next` links a search follows, so a huge result cannot eat the budget.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: TokenSource = None,
        timeout: tuple[float, float] = (1.0, 2.0),
        retries: int = 2,
        backoff: float = 0.1,
        max_pages: int = 5,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_pages = max_pages
        self._token = token
        self.upstream = urlsplit(self.base_url).netloc or self.base_url
        self.session = session or requests.Session()
        retry = _CappedRetry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            backoff_factor=backoff,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET"}),
            raise_on_status=False,
            respect_retry_after_header=True,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/fhir+json"}
        token = self._token() if callable(self._token) else self._token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers | (extra or {})

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        started = time.perf_counter()
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.Timeout:
            FHIR_ERRORS.labels(self.upstream, "timeout").inc()
            raise UpstreamError(f"FHIR server {self.upstream} timed out", timeout=True) from None
        except requests.RequestException as exc:
            FHIR_ERRORS.labels(self.upstream, "unreachable").inc()
            reason = type(exc).__name__
            raise UpstreamError(f"FHIR server {self.upstream} unreachable ({reason})") from None
        finally:
            FHIR_LATENCY.labels(self.upstream).observe(time.perf_counter() - started)
        if response.status_code >= 400:
            FHIR_ERRORS.labels(self.upstream, str(response.status_code)).inc()
            path = urlsplit(url).path
            log.warning("FHIR call failed", extra={"upstream": self.upstream, "status": response.status_code})
            if response.status_code in (404, 410):
                raise NotFoundError(
                    f"FHIR server {self.upstream} has no {path}", upstream_status=response.status_code
                )
            raise UpstreamError(
                f"FHIR server {self.upstream} answered {response.status_code} for {method} {path}",
                upstream_status=response.status_code,
            )
        return response

    def _json(self, response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise UpstreamError(
                f"FHIR server {self.upstream} sent a response that is not JSON",
                upstream_status=response.status_code,
            ) from None
        if not isinstance(body, dict):
            raise UpstreamError(f"FHIR server {self.upstream} sent JSON that is not a resource")
        return body

    def url(self, relative: str) -> str:
        return relative if "://" in relative else f"{self.base_url}/{relative.lstrip('/')}"

    def get(self, relative: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET a read or search URL (relative to the base, or absolute on the same server)."""
        return self._json(self._request("GET", self.url(relative), params=params, headers=self._headers()))

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        return self.get(f"{resource_type}/{resource_id}")

    def pages(self, relative: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """The searchset Bundle and each `next` page after it, up to `max_pages` in all."""
        page = self.get(relative, params)
        yield page
        for _ in range(self.max_pages - 1):
            link = next((lk.get("url") for lk in page.get("link", []) if lk.get("relation") == "next"), None)
            if not link:
                return
            page = self.get(link)
            yield page

    def search(self, relative: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The resources of a search across its pages (search-mode "include" entries included)."""
        resources: list[dict[str, Any]] = []
        for page in self.pages(relative, params):
            if page.get("resourceType") != "Bundle":
                resources.append(page)
                continue
            resources.extend(e["resource"] for e in page.get("entry", []) if isinstance(e.get("resource"), dict))
        return resources

    def create(
        self, resource: dict[str, Any], *, if_none_exist: str | None = None
    ) -> tuple[int, dict[str, Any] | None, str | None]:
        """POST a resource; with `if_none_exist`, a conditional create that a retry cannot duplicate.

        Returns (status, body or None, Location header or None). Not retried: a POST is not idempotent
        unless the server honours If-None-Exist, and we cannot know that it does.
        """
        headers = self._headers({"Content-Type": "application/fhir+json", "Prefer": "return=representation"})
        if if_none_exist:
            headers["If-None-Exist"] = if_none_exist
        response = self._request("POST", self.url(resource["resourceType"]), json=resource, headers=headers)
        body = self._json(response) if response.content else None
        location = response.headers.get("Location") or response.headers.get("Content-Location")
        return response.status_code, body, location
