"""A FHIR REST client that cannot be steered off its allowlisted base, nor made to wait or read forever.

Every request goes through one guarded path (`FhirClient._send`):

- **One parser.** Every URL, the base, a relative query, a server's `next` link, is normalised
  once by the same code the HTTP client runs (`normalise_url`: requests' URL preparation, then
  urllib3's `parse_url`, which removes `..` segments), and the *normalised* URL is what is checked
  and what is sent. A URL the stdlib parser reads differently (`\\@` tricks), or with userinfo,
  a backslash or a control character, is refused; so is any URL outside the base (`FhirBase`:
  same scheme, host and port, and a path under the base path, segment by segment).
- **No redirects.** A 3xx answer is an error: a redirect could lead to another host or path, and
  requests would carry the Authorization header along on the same host.
- **The token only for the base.** It is sent by an auth object (so neither `~/.netrc` nor userinfo
  in a URL can replace it) and only on URLs the base contains.
- **Budgets.** `deadline` (monotonic seconds, set by the caller for a whole fetch phase) bounds
  everything: connect and read timeouts never exceed what is left, retries stop when it passes
  (urllib3's Retry, told the deadline), and a watchdog shuts the socket down when it passes, so a
  server that drips one byte at a time (which no per-read timeout catches) is cut off on time, in
  the header phase as in the body. A response body is read in chunks and refused past
  `max_response_bytes` on the wire (Content-Length or counted) and past the call's `ByteBudget`
  after decompression (a 200 kB gzip bomb never becomes 200 MB: urllib3 >= 2.6 inflates at most
  the chunk asked for).
- **Bounded concurrency.** `FetchSlots` caps how many requests of one process fetch from FHIR
  servers at once; a call that finds no slot is told so (`Unavailable`: 503, retry) instead of
  tying up a request thread.

Retries are urllib3's (idempotent GETs only, on 429/502/503/504, with backoff and a capped
Retry-After); nothing here hand-rolls retry logic. The bearer token is held only for the
Authorization header: it is never logged, stored, or put in an error message. Each request carries
the current request's W3C `traceparent` (`fhir_vcf.logs.trace_headers`).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url
from urllib3.util.retry import Retry

from fhir_vcf.errors import NotFoundError, Unavailable, UpstreamError
from fhir_vcf.logs import trace_headers
from fhir_vcf.metrics import FHIR_ERRORS, FHIR_LATENCY

log = logging.getLogger(__name__)

TokenSource = str | Callable[[], str | None] | None

RETRY_STATUSES = (429, 502, 503, 504)
DEFAULT_PORTS = {"http": 80, "https": 443}
CHUNK_BYTES = 64 * 1024
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_DECODED_BYTES = 32 * 1024 * 1024

# Characters no URL we send may hold: a backslash (parsers disagree on it: `http://a\@b/`), ASCII
# controls and whitespace (header injection, truncation).
_UNSAFE_URL_CHARACTERS = re.compile(r"[\\\x00-\x20\x7f]")


class UnsafeUrl(UpstreamError):
    """A URL the client will not request: malformed, ambiguous, or outside the allowlisted base."""


# --- one parser for every URL ----------------------------------------------------------------------


def normalise_url(url: str) -> str:
    """The URL exactly as this client sends it, or UnsafeUrl.

    requests prepares the URL (IDNA host, re-quoting: `%2e` becomes `.`), then urllib3 parses it
    (lower-case scheme and host, `.` and `..` segments removed): the same two steps the request
    itself takes, so what is checked is what is sent. The result must read the same to the
    standard library's parser, have no userinfo, and be http(s).
    """
    if not isinstance(url, str) or not url or _UNSAFE_URL_CHARACTERS.search(url):
        raise UnsafeUrl("not a usable URL (empty, or holding a backslash, a space or a control character)")
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
        parts = parse_url(prepared.url or "")
    except (requests.RequestException, LocationParseError, ValueError, UnicodeError):
        raise UnsafeUrl("not a valid URL") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.host:
        raise UnsafeUrl("not an http(s) URL with a host")
    if parts.auth is not None or "@" in (parts.netloc or ""):
        raise UnsafeUrl("a URL with user information (user:password@) is not used")
    normalised = parts.url
    try:
        stdlib = urlsplit(normalised)
        stdlib_port = stdlib.port
    except ValueError:
        raise UnsafeUrl("not a valid URL") from None
    if (stdlib.hostname or "") != parts.host.strip("[]").lower() or (stdlib_port or None) != (parts.port or None):
        raise UnsafeUrl("a URL the URL parsers read differently is not used")
    return normalised


@dataclass(frozen=True)
class FhirBase:
    """An allowlisted FHIR base URL and the URLs it contains.

    `url` is the normalised base (no trailing slash). A base carries no query, fragment or userinfo:
    `?@host`, `#@host` and `user:pw@` are the tricks that make one URL look like another.
    """

    url: str
    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> FhirBase:
        """The base, or UnsafeUrl saying why `url` cannot be one."""
        if isinstance(url, str) and ("?" in url or "#" in url or "@" in url):
            raise UnsafeUrl("a FHIR base URL has no query (?), fragment (#) or user information (@)")
        normalised = normalise_url(url)
        parts = parse_url(normalised)
        path = re.sub(r"/+", "/", parts.path or "").rstrip("/")
        scheme, host = parts.scheme or "", (parts.host or "").lower()
        port = parts.port or DEFAULT_PORTS[scheme]
        shown_port = "" if port == DEFAULT_PORTS[scheme] else f":{port}"
        return cls(url=f"{scheme}://{host}{shown_port}{path}", scheme=scheme, host=host, port=port, path=path)

    def contains(self, normalised: str) -> bool:
        """Whether a normalised URL is this base or under it (same origin, path below, segment-wise)."""
        parts = parse_url(normalised)
        if parts.scheme != self.scheme or (parts.host or "").lower() != self.host:
            return False
        if (parts.port or DEFAULT_PORTS[self.scheme]) != self.port:
            return False
        path = parts.path or "/"
        return path == self.path or path == self.path + "/" or path.startswith(self.path + "/")

    def resolve(self, target: str) -> str:
        """The normalised absolute URL of `target` (relative to the base, or absolute), if the base
        contains it; else UnsafeUrl. A relative `next` link such as `../../admin` is resolved here,
        normalised, and then checked."""
        if not isinstance(target, str) or not target:
            raise UnsafeUrl("an empty URL")
        absolute = target if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:", target) else f"{self.url}/{target.lstrip('/')}"
        normalised = normalise_url(absolute)
        if not self.contains(normalised):
            raise UnsafeUrl("a URL outside the allowlisted FHIR base is not requested")
        return normalised


# --- budgets ---------------------------------------------------------------------------------------


class ByteBudget:
    """The decompressed bytes one call may read from FHIR servers, across all its requests and threads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, count: int, upstream: str) -> None:
        with self._lock:
            self.used += count
            over = self.used > self.limit
        if over:
            FHIR_ERRORS.labels(upstream, "too-large").inc()
            raise UpstreamError(
                f"FHIR server {upstream} sent more than {self.limit} bytes (decompressed) for one call "
                "(FHIR_VCF_FHIR_MAX_DECODED_BYTES); the rest was not read"
            )


class FetchSlots:
    """How many requests of this process may fetch from FHIR servers at once.

    Each request thread that must fetch holds a slot for its whole fetch phase. Calls that need no
    fetch (a complete prefetch) take none, so calls stuck on a slow server can never use up the
    threads those calls need; a call that finds no free slot within `wait` seconds is answered 503
    (`Unavailable`) with Retry-After.
    """

    def __init__(self, size: int, *, wait: float = 0.25) -> None:
        self.size = size
        self.wait = wait
        self._free = threading.BoundedSemaphore(size)

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._free.acquire(timeout=self.wait):
            raise Unavailable(
                f"this instance is already fetching for {self.size} calls (FHIR_VCF_FHIR_MAX_CONCURRENT_FETCHES); "
                "retry shortly",
                retry_after=1,
            )
        try:
            yield
        finally:
            self._free.release()


class _BudgetRetry(Retry):
    """urllib3's Retry, stopping at the caller's deadline: no retry starts and no back-off or
    Retry-After sleep lasts past it (Retry-After is also capped at `max_retry_after`)."""

    max_retry_after = 1.0

    def __init__(self, *args: Any, deadline: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline

    def new(self, **kw: Any) -> _BudgetRetry:
        kw.setdefault("deadline", self.deadline)
        return super().new(**kw)

    def _left(self) -> float:
        return float("inf") if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def is_exhausted(self) -> bool:
        return super().is_exhausted() or self._left() <= 0

    def get_backoff_time(self) -> float:
        return min(super().get_backoff_time(), self._left())

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        return None if value is None else min(value, self.max_retry_after, self._left())


# --- the watchdog: a deadline no per-read timeout can give -------------------------------------------


class _Watch:
    """Shuts the sockets of one request down when its deadline passes, whatever the request is doing
    (waiting for headers, reading a dripping body): the blocked read then fails at once."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Watch:
        self._token = _WATCH.set(self)
        self._timer.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._timer.cancel()
        _WATCH.reset(self._token)

    def add(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    with suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's: TLS state is left alone


_WATCH: ContextVar[_Watch | None] = ContextVar("fhir_vcf_fetch_watch", default=None)


class _WatchedConnectionMixin:
    """Hands its socket to the current request's watchdog before waiting for the answer."""

    sock: socket.socket | None

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        watch = _WATCH.get()
        if watch is not None:
            watch.add(self.sock)
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_WatchedConnectionMixin, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedConnectionMixin, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    """requests' adapter with watched connections (its retries, pooling and TLS unchanged)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _Bearer(AuthBase):
    """The Authorization header, set by an auth object so that requests takes no credentials from
    `~/.netrc` or a URL's userinfo in its place."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        if self.token:
            request.headers["Authorization"] = f"Bearer {self.token}"
        return request


@dataclass
class Answer:
    """A FHIR server's answer, read in full within the budgets."""

    status_code: int
    headers: Any
    content: bytes


class FhirClient:
    """Read and search one FHIR server, only under its base URL.

    `token` is a bearer token, or a callable returning one (SMART Backend Services refreshes its
    token that way), or None for an open server. `timeout` is (connect, read) seconds per attempt;
    `max_pages` caps how many `next` links a search follows. `deadline` (a `time.monotonic()`
    value) and `byte_budget` are the caller's budgets for a whole fetch phase: set them before the
    first request (`FhirClient.budgeted`).
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
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
        session: requests.Session | None = None,
    ) -> None:
        self.base = FhirBase.parse(base_url)
        self.base_url = self.base.url
        self.timeout = timeout
        self.max_pages = max_pages
        self.max_response_bytes = max_response_bytes
        self.deadline: float | None = None
        self.byte_budget = ByteBudget(max_decoded_bytes)
        self._token = token
        self.upstream = urlsplit(self.base_url).netloc
        self.session = session or requests.Session()
        self._retry = _BudgetRetry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            redirect=0,
            backoff_factor=backoff,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET"}),
            raise_on_status=False,
            raise_on_redirect=False,
            respect_retry_after_header=True,
        )
        self._adapter = _GuardedAdapter(max_retries=self._retry)
        self.session.mount("http://", self._adapter)
        self.session.mount("https://", self._adapter)

    def budgeted(self, *, deadline: float | None, byte_budget: ByteBudget | None = None) -> FhirClient:
        """This client, bound to a fetch phase's deadline and byte budget (shared by its threads)."""
        self.deadline = deadline
        if byte_budget is not None:
            self.byte_budget = byte_budget
        return self

    def close(self) -> None:
        self.session.close()

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Accept": "application/fhir+json", **trace_headers(), **(extra or {})}

    def _auth(self) -> _Bearer:
        return _Bearer(self._token() if callable(self._token) else self._token)

    def _left(self) -> float:
        if self.deadline is None:
            return float("inf")
        left = self.deadline - time.monotonic()
        if left <= 0:
            FHIR_ERRORS.labels(self.upstream, "timeout").inc()
            raise UpstreamError(f"FHIR server {self.upstream}: the time budget is spent", timeout=True)
        return left

    def _send(self, method: str, url: str, **kwargs: Any) -> Answer:
        """The one guarded request: checked URL, no redirect, budgets, token for the base only."""
        target = self.base.resolve(url)
        left = self._left()
        connect, read = self.timeout
        timeout = (min(connect, left), min(read, left))
        self._adapter.max_retries = self._retry.new(deadline=self.deadline)
        started = time.perf_counter()
        watch = _Watch(left) if left != float("inf") else None
        try:
            with watch or nullcontext():
                response = self.session.request(
                    method, target, timeout=timeout, allow_redirects=False, stream=True, auth=self._auth(), **kwargs
                )
                try:
                    if 300 <= response.status_code < 400:
                        FHIR_ERRORS.labels(self.upstream, str(response.status_code)).inc()
                        raise UpstreamError(
                            f"FHIR server {self.upstream} answered with a redirect (HTTP {response.status_code}); "
                            "redirects are not followed",
                            upstream_status=response.status_code,
                        )
                    content = self._read(response) if response.status_code < 400 else b""
                finally:
                    response.close()
        except UpstreamError:
            raise
        except (requests.RequestException, Urllib3Error, OSError) as exc:
            if watch is not None and watch.expired:
                FHIR_ERRORS.labels(self.upstream, "timeout").inc()
                raise UpstreamError(
                    f"FHIR server {self.upstream} did not answer within the time budget", timeout=True
                ) from None
            if isinstance(exc, requests.Timeout | TimeoutError):
                FHIR_ERRORS.labels(self.upstream, "timeout").inc()
                raise UpstreamError(f"FHIR server {self.upstream} timed out", timeout=True) from None
            FHIR_ERRORS.labels(self.upstream, "unreachable").inc()
            raise UpstreamError(f"FHIR server {self.upstream} unreachable ({type(exc).__name__})") from None
        finally:
            FHIR_LATENCY.labels(self.upstream).observe(time.perf_counter() - started)
        answer = Answer(response.status_code, response.headers, content)
        if answer.status_code >= 400:
            self._refuse_status(method, target, answer.status_code)
        return answer

    def _read(self, response: requests.Response) -> bytes:
        """The body, decompressed, within the wire cap and the call's decompressed byte budget."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_response_bytes:
            FHIR_ERRORS.labels(self.upstream, "too-large").inc()
            raise UpstreamError(
                f"FHIR server {self.upstream} announced a response of {declared} bytes, more than "
                f"{self.max_response_bytes} (FHIR_VCF_FHIR_MAX_RESPONSE_BYTES); it was not read"
            )
        raw = response.raw
        chunks: list[bytes] = []
        for chunk in raw.stream(CHUNK_BYTES, decode_content=True):
            if raw.tell() > self.max_response_bytes:
                FHIR_ERRORS.labels(self.upstream, "too-large").inc()
                raise UpstreamError(
                    f"FHIR server {self.upstream} sent more than {self.max_response_bytes} bytes "
                    "(FHIR_VCF_FHIR_MAX_RESPONSE_BYTES); the rest was not read"
                )
            self.byte_budget.take(len(chunk), self.upstream)
            chunks.append(chunk)
        return b"".join(chunks)

    def _refuse_status(self, method: str, url: str, status: int) -> None:
        FHIR_ERRORS.labels(self.upstream, str(status)).inc()
        path = urlsplit(url).path
        log.warning("FHIR call failed", extra={"upstream": self.upstream, "status": status})
        if status in (404, 410):
            raise NotFoundError(f"FHIR server {self.upstream} has no {path}", upstream_status=status)
        raise UpstreamError(f"FHIR server {self.upstream} answered {status} for {method} {path}",
                            upstream_status=status)

    def _json(self, answer: Answer) -> dict[str, Any]:
        try:
            body = json.loads(answer.content)
        except (ValueError, RecursionError):
            raise UpstreamError(
                f"FHIR server {self.upstream} sent a response that is not JSON", upstream_status=answer.status_code
            ) from None
        if not isinstance(body, dict):
            raise UpstreamError(f"FHIR server {self.upstream} sent JSON that is not a resource")
        return body

    def url(self, relative: str) -> str:
        """The absolute, normalised URL of `relative` under the base (UnsafeUrl when outside it)."""
        return self.base.resolve(relative)

    def get(self, relative: str) -> dict[str, Any]:
        """GET a read or search URL (relative to the base, or absolute under it)."""
        return self._json(self._send("GET", relative, headers=self._headers()))

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        return self.get(f"{resource_type}/{resource_id}")

    def pages(self, relative: str) -> Iterator[dict[str, Any]]:
        """The searchset Bundle and each `next` page after it, up to `max_pages` in all."""
        page = self.get(relative)
        yield page
        for _ in range(self.max_pages - 1):
            link = next_link(page)
            if not link:
                return
            page = self.get(link)
            yield page

    def search(self, relative: str) -> list[dict[str, Any]]:
        """The resources of a search across its pages (search-mode "include" entries included)."""
        resources: list[dict[str, Any]] = []
        for page in self.pages(relative):
            if page.get("resourceType") != "Bundle":
                resources.append(page)
                continue
            entries = page.get("entry")
            for entry in entries if isinstance(entries, list) else ():
                if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                    resources.append(entry["resource"])
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
        answer = self._send("POST", str(resource["resourceType"]), json=resource, headers=headers)
        body = self._json(answer) if answer.content else None
        location = answer.headers.get("Location") or answer.headers.get("Content-Location")
        return answer.status_code, body, location


def next_link(page: Any) -> str | None:
    """The `next` link of a searchset Bundle, if it has one (whatever shape `link` arrived in)."""
    links = page.get("link") if isinstance(page, dict) else None
    for link in links if isinstance(links, list) else ():
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


__all__ = [
    "Answer",
    "ByteBudget",
    "FetchSlots",
    "FhirBase",
    "FhirClient",
    "TokenSource",
    "UnsafeUrl",
    "next_link",
    "normalise_url",
]
