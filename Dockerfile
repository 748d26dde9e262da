# syntax=docker/dockerfile:1
# fhir-vcf: the CDS Hooks service and REST API on gunicorn.
#
#   docker build -t fhir-vcf .
#   docker run --rm -p 8080:8080 -v fhir-vcf-var:/app/var fhir-vcf
#   docker run --rm -p 8080:8080 -e FHIR_VCF_DEMO=true fhir-vcf      # the sample patients at /demo/fhir
#
# Configuration only through FHIR_VCF_* environment variables (docs/configuration.md); secrets
# (FHIR_VCF_FHIR_TOKEN, a SMART private key file) are passed at run time, never baked in.

ARG PYTHON_IMAGE=python:3.11-slim

# --- stage 1: build the wheel of fhir-vcf and of every dependency -------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md openapi.yaml ./
COPY fhir_vcf ./fhir_vcf
RUN pip wheel --wheel-dir /wheels ".[postgres]"

# --- stage 2: the runtime, installed from those wheels only ---------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FHIR_VCF_DATABASE_URL=sqlite:////app/var/fhir-vcf.db \
    FHIR_VCF_DEMO_DIR=/app/samples
RUN groupadd --system --gid 10001 fhirvcf \
 && useradd --system --uid 10001 --gid fhirvcf --home-dir /app --no-create-home --shell /usr/sbin/nologin fhirvcf
WORKDIR /app
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels "fhir-vcf[postgres]"
# The sample Bundles, for demo mode only (FHIR_VCF_DEMO=true); the one copy of them is samples/.
COPY samples/ /app/samples/
RUN mkdir -p /app/var && chown fhirvcf:fhirvcf /app/var
# SQLite (audit + feedback) lives here; mount a volume to keep it, or use FHIR_VCF_DATABASE_URL=postgresql://...
VOLUME ["/app/var"]
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
CMD ["fhir-vcf", "serve", "--host", "0.0.0.0", "--port", "8080"]
