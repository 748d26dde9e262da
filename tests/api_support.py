"""Shared helpers for the REST API tests: app factory settings and a fake EHR FHIR server.

The fake server is a `responses` callback, so the real FhirClient (sessions, headers, paging,
error mapping) runs unchanged; only the network is replaced.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import responses

from fhir_vcf.app import create_app
from fhir_vcf.config import Settings

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
BASE = "http://ehr.test/fhir"
TOKEN_URL = "http://auth.test/token"


def make_app(tmp_path: Path, **overrides: Any):
    """An app with explicit settings (never the developer's environment) and a throwaway database."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'test.db'}", **overrides)
    app = create_app(settings)
    app.testing = True
    return app


def sample_resources(name: str) -> list[dict[str, Any]]:
    document = json.loads((SAMPLES / name).read_text())
    if document.get("resourceType") == "Bundle":
        return [e["resource"] for e in document.get("entry", []) if "resource" in e]
    return [document]


def bundle(resources: list[dict[str, Any]], kind: str = "searchset") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "total": len(resources),
        "entry": [{"fullUrl": f"{BASE}/{r['resourceType']}/{r.get('id', i)}", "resource": r}
                  for i, r in enumerate(resources)],
    }


class FakeFhirServer:
    """An in-memory FHIR server behind `responses`: read, search by patient, conditional create.

    `fail` maps a resource type to a status code (or an exception instance) to answer instead.
    """

    def __init__(self, resources: list[dict[str, Any]] | None = None, *, honour_if_none_exist: bool = True) -> None:
        self.resources: list[dict[str, Any]] = [dict(r) for r in resources or []]
        self.fail: dict[str, Any] = {}
        self.calls: Counter[str] = Counter()
        self.headers: list[dict[str, str]] = []
        self.created: list[dict[str, Any]] = []
        self.honour_if_none_exist = honour_if_none_exist
        self._next_id = 1

    def install(self, rsps: responses.RequestsMock) -> None:
        pattern = re.compile(re.escape(BASE) + r"/.*")
        rsps.add_callback(responses.GET, pattern, callback=self._get)
        rsps.add_callback(responses.POST, pattern, callback=self._post)

    def _answer(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        return status, {"Content-Type": "application/fhir+json", **(headers or {})}, json.dumps(body) if body else ""

    def _failure(self, rtype: str):
        failure = self.fail.get(rtype)
        if isinstance(failure, Exception):
            raise failure
        if failure:
            return self._answer(failure, {"resourceType": "OperationOutcome",
                                          "issue": [{"severity": "error", "code": "exception"}]})
        return None

    def _get(self, request):
        self.headers.append(dict(request.headers))
        parts = urlsplit(request.url)
        path = parts.path[len(urlsplit(BASE).path):].strip("/").split("/")
        rtype = path[0]
        self.calls[f"GET {rtype}{'/' if len(path) > 1 else '?'}"] += 1
        failed = self._failure(rtype)
        if failed:
            return failed
        if len(path) == 2:
            for r in self.resources:
                if r["resourceType"] == rtype and r.get("id") == path[1]:
                    return self._answer(200, r)
            return self._answer(404, {"resourceType": "OperationOutcome",
                                      "issue": [{"severity": "error", "code": "not-found"}]})
        query = parse_qs(parts.query)
        patient = query.get("patient", [""])[0]
        found = [r for r in self.resources if r["resourceType"] == rtype and self._belongs(r, patient)]
        return self._answer(200, bundle(found))

    @staticmethod
    def _belongs(resource: dict[str, Any], patient: str) -> bool:
        for element in ("subject", "patient"):
            ref = (resource.get(element) or {}).get("reference", "")
            if ref.split("/")[-1] == patient:
                return True
        return False

    def _post(self, request):
        self.headers.append(dict(request.headers))
        rtype = urlsplit(request.url).path.rstrip("/").split("/")[-1]
        self.calls[f"POST {rtype}"] += 1
        failed = self._failure(rtype)
        if failed:
            return failed
        resource = json.loads(request.body)
        condition = request.headers.get("If-None-Exist")
        if condition and self.honour_if_none_exist:
            name, _, value = condition.partition("=")
            system, _, code = unquote(value).partition("|")
            assert name == "identifier"
            for existing in self.created:
                if any(i.get("system") == system and i.get("value") == code for i in existing.get("identifier", [])):
                    return self._answer(200, existing)
        resource["id"] = f"cp-{self._next_id}"
        self._next_id += 1
        resource["meta"] = {"versionId": "1"}
        self.created.append(resource)
        self.resources.append(resource)
        return self._answer(201, resource, {"Location": f"{BASE}/CarePlan/{resource['id']}/_history/1"})
