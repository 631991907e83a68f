# The relay image: gunicorn serving spycloud_relay.app:create_app() on port 9090 as a non-root user (uid 10001).
#   docker build -t spycloud-xdr-relay .
#   docker run -dp 9090:9090 spycloud-xdr-relay
# Build arguments:
#   BASE_IMAGE       an image with python3 (3.11, as Pipfile.lock) and its venv module;
#                    the default is the official slim Python image. Both stages use it.
#   BUILD_CA_BUNDLE  opt-in: PEM text of extra CAs that pip trusts (on top of its own) while
#                    installing packages, for builds behind a TLS-intercepting proxy. It is
#                    used in the first stage only and is not part of the image.
# Works with BuildKit and with the legacy builder (DOCKER_BUILDKIT=0).
ARG BASE_IMAGE=python:3.11-slim

# Stage 1 (build): the runtime packages of Pipfile.lock (its "default" section, checked
# against its hashes) in a virtual environment, from wheels only: no compiler, no pipenv.
# Then the relay's package, compiled to bytecode.
FROM ${BASE_IMAGE} AS build
ARG BUILD_CA_BUNDLE=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_NO_INPUT=1
WORKDIR /build
COPY Pipfile.lock docker/lock_to_requirements.py /build/
RUN set -eu; \
    python3 lock_to_requirements.py Pipfile.lock > requirements.txt; \
    python3 -m venv /opt/relay; \
    if [ -n "$BUILD_CA_BUNDLE" ]; then \
      { cat "$(/opt/relay/bin/python -c 'import pip._vendor.certifi as c; print(c.where())')"; \
        printf '%s\n' "$BUILD_CA_BUNDLE"; } > /build/ca.pem; \
      export PIP_CERT=/build/ca.pem; \
    fi; \
    /opt/relay/bin/pip install --quiet --require-hashes --only-binary=:all: -r requirements.txt; \
    /opt/relay/bin/pip check
# Then the relay: its wheel, built from pyproject.toml and code/spycloud_relay/ with the lock's
# setuptools (hash-checked, in a throwaway venv), installed with --no-deps (its dependencies
# are the lock's, above): a regular install into site-packages, with the `relay` command.
# Nothing else of code/ is copied.
COPY pyproject.toml /build/
COPY code/spycloud_relay/ /build/code/spycloud_relay/
RUN set -eu; \
    cd /build; \
    python3 lock_to_requirements.py --build Pipfile.lock > build-requirements.txt; \
    python3 -m venv /build/venv; \
    if [ -f /build/ca.pem ]; then export PIP_CERT=/build/ca.pem; fi; \
    /build/venv/bin/pip install --quiet --require-hashes --only-binary=:all: \
      -r build-requirements.txt; \
    /build/venv/bin/pip wheel --quiet --no-deps --no-build-isolation --no-index \
      --wheel-dir /build/dist /build; \
    /opt/relay/bin/pip install --quiet --no-deps --no-index /build/dist/*.whl; \
    /opt/relay/bin/pip check; \
    /opt/relay/bin/pip uninstall --quiet --yes pip setuptools; \
    rm -rf /build; \
    /opt/relay/bin/python -m compileall -q /opt/relay

# Stage 2: the base image and the virtual environment with the relay in it; nothing else
# (no tests, no simulator, no pip, no build tools).
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="SpyCloud ATO Prevention relay for Cisco XDR" \
      org.opencontainers.image.licenses="MIT"
ENV PATH=/opt/relay/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PORT=9090
RUN set -eu; \
    if command -v useradd >/dev/null; then \
      groupadd --system --gid 10001 relay; \
      useradd --system --uid 10001 --gid relay --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin relay; \
    else \
      addgroup -S -g 10001 relay; \
      adduser -S -D -H -u 10001 -G relay -h /nonexistent -s /sbin/nologin relay; \
    fi
COPY docker/healthcheck.py /usr/local/lib/relay-healthcheck.py
COPY docker/entrypoint.sh /usr/local/bin/relay-entrypoint
COPY --from=build /opt/relay /opt/relay
WORKDIR /opt/relay
USER 10001:10001
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python3", "/usr/local/lib/relay-healthcheck.py"]
# `docker run IMAGE sync --once` runs `relay sync --once` (docker/entrypoint.sh).
ENTRYPOINT ["relay-entrypoint"]
CMD ["gunicorn", "--config", "python:spycloud_relay.gunicorn_conf", "spycloud_relay.app:create_app()"]
