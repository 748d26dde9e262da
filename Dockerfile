# syntax=docker/dockerfile:1
# fhir-vcf: the CDS Hooks service and REST API on gunicorn.
#
#   docker build -t fhir-vcf .
#   docker run --rm -p 8080:8080 -v fhir-vcf-var:/app/var fhir-vcf
#   docker run --rm -p 8080:8080 -e FHIR_VCF_DEMO=true fhir-vcf      # the sample patients at /demo/fhir
#   docker build --build-arg PORT=9000 -t fhir-vcf . && docker run --rm -p 9000:9000 fhir-vcf
#
# Configuration only through FHIR_VCF_* environment variables (docs/configuration.md), read by
# `fhir-vcf serve` at start-up and passed through as they are: the CMD fixes nothing but the
# address, so the worker count (FHIR_VCF_WORKERS, by default from the container's CPU quota), the
# threads (FHIR_VCF_THREADS), the port and every other serving setting follow `docker run -e
# FHIR_VCF_...`; gunicorn's control socket is off. Secrets (FHIR_VCF_FHIR_TOKEN, a SMART private key
# file) are passed at run time, never baked in.
#
# Reproducible: the base image is pinned by digest (python:3.11-slim, Python 3.11.15 on Debian 13
# "trixie", the multi-platform index digest as docker-library/repo-info records it; bump it
# deliberately, see docs/configuration.md "Container image"), and every Python package comes
# from requirements.lock, each file checked against its SHA-256 (`pip --require-hashes`).

ARG PYTHON_IMAGE=python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff
# The one port variable: gunicorn's bind (FHIR_VCF_PORT, read by `fhir-vcf serve`), EXPOSE and HEALTHCHECK.
ARG PORT=8080

# --- stage 1: the locked dependencies' wheels, hash-checked, and the wheel of fhir-vcf -------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.lock pyproject.toml README.md openapi.yaml ./
COPY fhir_vcf ./fhir_vcf
RUN pip download --require-hashes --only-binary=:all: --no-deps --dest /wheels -r requirements.lock \
 && pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

# --- stage 2: the runtime, installed from those wheels only ---------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG PORT
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FHIR_VCF_PORT=${PORT} \
    FHIR_VCF_DATABASE_URL=sqlite:////app/var/fhir-vcf.db \
    FHIR_VCF_DEMO_DIR=/app/samples
RUN groupadd --system --gid 10001 fhirvcf \
 && useradd --system --uid 10001 --gid fhirvcf --home-dir /app --no-create-home --shell /usr/sbin/nologin fhirvcf
WORKDIR /app
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    --mount=type=bind,from=build,source=/src/requirements.lock,target=/tmp/requirements.lock \
    pip install --no-index --find-links /wheels --require-hashes -r /tmp/requirements.lock \
 && pip install --no-index --find-links /wheels --no-deps fhir-vcf
# The sample Bundles, for demo mode only (FHIR_VCF_DEMO=true); the one copy of them is samples/.
COPY samples/ /app/samples/
RUN mkdir -p /app/var && chown fhirvcf:fhirvcf /app/var
# SQLite (audit + feedback) lives here; mount a volume to keep it, or use FHIR_VCF_DATABASE_URL=postgresql://...
VOLUME ["/app/var"]
USER 10001:10001
EXPOSE ${FHIR_VCF_PORT}
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = f\"http://127.0.0.1:{os.environ['FHIR_VCF_PORT']}/healthz\"; sys.exit(0 if urllib.request.urlopen(url, timeout=2).status == 200 else 1)"]
CMD ["fhir-vcf", "serve", "--host", "0.0.0.0"]
