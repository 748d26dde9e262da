"""Transports over HTTP: the CDS Hooks blueprint, the REST API, operations endpoints, the demo FHIR server."""
