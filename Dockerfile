# The relay image: gunicorn serving app:app on port 9090 as a non-root user.
#   docker build -t spycloud-xdr-relay .
#   docker run -dp 9090:9090 spycloud-xdr-relay
# BASE_IMAGE must provide python3 with venv (the default is the official slim Python image).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS dependencies
# Opt-in: a CA bundle to trust during the build (e.g. behind a TLS-intercepting proxy).
ARG BUILD_CA_BUNDLE=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY Pipfile Pipfile.lock /build/
WORKDIR /build
RUN set -eu; \
    if [ -n "$BUILD_CA_BUNDLE" ]; then printf '%s\n' "$BUILD_CA_BUNDLE" > /build/ca.pem; \
      export PIP_CERT=/build/ca.pem; fi; \
    python3 -m venv /build/tools && /build/tools/bin/pip install --quiet pipenv; \
    PIPENV_VERBOSITY=-1 /build/tools/bin/pipenv requirements --hash \
      | grep -v '^-i ' > requirements.txt; \
    python3 -m venv /opt/relay; \
    /opt/relay/bin/pip install --quiet --require-hashes --no-deps -r requirements.txt; \
    rm -f /build/ca.pem

FROM ${BASE_IMAGE}
ENV PATH=/opt/relay/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN (getent group relay || groupadd --system relay 2>/dev/null || addgroup -S relay) >/dev/null; \
    (id relay || useradd --system --gid relay --no-create-home relay 2>/dev/null \
      || adduser -S -G relay relay) >/dev/null
COPY --from=dependencies /opt/relay /opt/relay
COPY code/app.py code/config.py code/gunicorn.conf.py code/logs.py code/metrics.py /app/
COPY code/api /app/api
COPY code/spycloud /app/spycloud
COPY code/ctim /app/ctim
WORKDIR /app
USER relay
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import sys, urllib.request as u; r = u.urlopen(u.Request('http://127.0.0.1:9090/watchdog', headers={'Health-Check': 'docker'}), timeout=4); sys.exit(0 if r.status == 200 else 1)"]
CMD ["gunicorn", "--config", "gunicorn.conf.py", "app:app"]
