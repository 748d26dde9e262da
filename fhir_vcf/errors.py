"""The exception hierarchy.

Every error a caller can provoke is one of these, so each transport can turn it into its own
clear answer (a CLI line and exit 2, an HTTP problem body, an OperationOutcome) without ever
showing a traceback.
"""

from __future__ import annotations


class FhirVcfError(Exception):
    """Base of every error the service raises on purpose."""


class InputError(FhirVcfError):
    """The input is not something we can evaluate: bad JSON, not FHIR, an invalid resource.

    `source` names the file (or "request body"), `resource` the resource ("Condition/vcf-1" or
    "entry[3]"), `element` the element path ("onsetDateTime"), so the message points at the fix.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        resource: str | None = None,
        element: str | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.resource = resource
        self.element = element
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ": ".join(
            part for part in (self.source, " ".join(p for p in (self.resource, self.element) if p)) if part
        )
        return f"{where}: {self.message}" if where else self.message


class PolicyError(FhirVcfError):
    """A policy file is missing, unreadable or does not follow the policy schema."""


class ConfigError(FhirVcfError):
    """A configuration value is invalid; raised at start-up, never mid-request."""


class UpstreamError(FhirVcfError):
    """A FHIR server we called failed or could not be reached.

    `upstream_status` is the HTTP status the server answered (None when it never answered,
    e.g. a timeout or a refused connection); `timeout` tells the two apart for 502 vs 504.
    """

    def __init__(self, message: str, *, upstream_status: int | None = None, timeout: bool = False) -> None:
        self.upstream_status = upstream_status
        self.timeout = timeout
        super().__init__(message)


class NotFoundError(UpstreamError):
    """The FHIR server answered 404 / 410 for a resource we needed (e.g. the patient)."""


class Unavailable(FhirVcfError):
    """The service cannot answer this now but may in a moment: every transport answers 503 with
    `Retry-After` (the database does not answer, every upstream fetch slot is taken). Never a 401:
    a client told its credentials are bad would not retry."""

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        self.retry_after = retry_after
        super().__init__(message)
