# The relay image: gunicorn serving app:create_app() on port 9090 as a non-root user (uid 10001).
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
# Then the relay's code, less what does not belong in the image, compiled to bytecode.
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
    /opt/relay/bin/pip check; \
    /opt/relay/bin/pip uninstall --quiet --yes pip setuptools; \
    rm -rf /build
# code/ holds app.py, config.py, gunicorn.conf.py, serving.py (gunicorn's worker class), the
# api, spycloud and ctim packages and the files they read at run time, beside tests, the
# simulator, the demo and terminal tools.
COPY code/ /app/
RUN cd /app \
    && rm -rf tests simulator demo.py localrelay.py cli.py terminal.py devcommands.py \
    && /opt/relay/bin/python -m compileall -q /app

# Stage 2: the base image, the virtual environment and the relay's code; nothing else
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
COPY --from=build /opt/relay /opt/relay
COPY --from=build /app /app
WORKDIR /app
USER 10001:10001
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python3", "/usr/local/lib/relay-healthcheck.py"]
CMD ["gunicorn", "--config", "gunicorn.conf.py", "app:create_app()"]
