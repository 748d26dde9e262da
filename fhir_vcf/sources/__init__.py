"""Where records come from: Bundle files, CDS Hooks prefetch, a FHIR server."""
