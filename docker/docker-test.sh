#!/usr/bin/env bash
# make docker-test: build the image from the repository's Dockerfile, run it against the
# SpyCloud simulator and the local JWKS issuer on this host (docker/e2e.py), and remove
# everything this run started or created, also on failure or interruption: the container,
# the image tags it made, the Docker daemon if it started one, its temporary directory.
#
# Uses the Docker daemon that answers (DOCKER_HOST or the default socket) if there is one;
# otherwise installs Debian's docker.io if needed and starts a private dockerd whose data
# lives in the run's temporary directory. All traffic stays on 127.0.0.1 (containers and
# builds use --network host), except package downloads during the build and debootstrap.
#
# Settings (environment):
#   DOCKER_TEST_BASE_IMAGE  base image to build on; default: spycloud-xdr-relay-base:bookworm
#                           or python:3.11-slim if the daemon has one, else a Debian
#                           bookworm image made here with debootstrap (removed afterwards)
#   DOCKER_TEST_BUILD_CA    auto (default): the CAs that /etc/ssl/certs/ca-certificates.crt
#                           holds beyond the Mozilla set, as BUILD_CA_BUNDLE; a PEM file to
#                           pass whole; or "none"
#   DOCKER_TEST_TMPDIR      where the temporary directory goes (default TMPDIR or /tmp)
#   DOCKER_TEST_PYTHON      the Python with the project's packages (default .venv/bin/python)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=docker/engine.sh
. docker/engine.sh

PYTHON=${DOCKER_TEST_PYTHON:-$ROOT/.venv/bin/python}
RUN_ID=$(date +%Y%m%d%H%M%S)-$$
IMAGE=spycloud-xdr-relay:docker-test-$RUN_ID
BUILD_STAGE_IMAGE=spycloud-xdr-relay-build:docker-test-$RUN_ID
CONTAINER=spycloud-relay-docker-test-$RUN_ID
WORK=$(mktemp -d "${DOCKER_TEST_TMPDIR:-${TMPDIR:-/tmp}}/relay-docker-test.XXXXXX")
ENGINE_DIR=$WORK/engine
STARTED_DAEMON=0
CREATED_TAGS=()   # removed in reverse order: the app image before the base image

say() { printf 'docker-test: %s\n' "$*"; }
elapsed() { printf '%ds' "$((SECONDS - $1))"; }

cleanup() {
    local status=$? tag i
    trap - EXIT INT TERM
    set +e
    if [ "$STARTED_DAEMON" = 1 ] || daemon_up; then
        docker rm --force --volumes "$CONTAINER" >/dev/null 2>&1
        for ((i = ${#CREATED_TAGS[@]} - 1; i >= 0; i--)); do
            tag=${CREATED_TAGS[i]}
            if docker image inspect "$tag" >/dev/null 2>&1; then
                docker rmi "$tag" >/dev/null || say "could not remove the image $tag"
            fi
        done
    fi
    if [ "$STARTED_DAEMON" = 1 ]; then
        stop_dockerd "$ENGINE_DIR"
    fi
    remove_tree "$WORK"
    if [ "$status" = 0 ]; then
        say "cleaned up; passed in $(elapsed 0)"
    else
        say "cleaned up; FAILED (exit $status) after $(elapsed 0)"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. A Docker engine.
t=$SECONDS
if command -v docker >/dev/null && daemon_up; then
    say "using the Docker daemon that answers at ${DOCKER_HOST:-the default socket}"
else
    ensure_engine_packages
    STARTED_DAEMON=1
    start_dockerd "$ENGINE_DIR" "$ENGINE_DIR/docker.sock" "$ENGINE_DIR/data"
    export DOCKER_HOST=unix://$ENGINE_DIR/docker.sock
fi
say "engine ready in $(elapsed "$t")"

# 2. A base image.
t=$SECONDS
if [ -n "${DOCKER_TEST_BASE_IMAGE:-}" ]; then
    BASE=$DOCKER_TEST_BASE_IMAGE
elif docker image inspect "$LASTING_BASE_TAG" >/dev/null 2>&1; then
    BASE=$LASTING_BASE_TAG
elif docker image inspect python:3.11-slim >/dev/null 2>&1; then
    BASE=python:3.11-slim
else
    BASE=spycloud-xdr-relay-base:docker-test-$RUN_ID
    CREATED_TAGS+=("$BASE")
    import_base_image "$WORK/base" "$BASE"
fi
say "base image $BASE ready in $(elapsed "$t")"

# 3. The opt-in CA bundle for pip inside the build.
BUILD_ARGS=(--build-arg "BASE_IMAGE=$BASE")
CA_SOURCE=${DOCKER_TEST_BUILD_CA:-auto}
case "$CA_SOURCE" in
none) ;;
auto)
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        BUILD_CA_BUNDLE=$("$PYTHON" docker/extra_cas.py /etc/ssl/certs/ca-certificates.crt)
    fi
    ;;
*) BUILD_CA_BUNDLE=$(cat "$CA_SOURCE") ;;
esac
if [ -n "${BUILD_CA_BUNDLE:-}" ]; then
    if [ "${#BUILD_CA_BUNDLE}" -gt 120000 ]; then
        say "the CA bundle for the build is ${#BUILD_CA_BUNDLE} bytes, over what one build" \
            "argument can carry (128 KiB): set DOCKER_TEST_BUILD_CA to a smaller PEM file"
        exit 1
    fi
    export BUILD_CA_BUNDLE
    BUILD_ARGS+=(--build-arg BUILD_CA_BUNDLE)   # its value comes from the environment
    say "the build trusts $(grep -c 'BEGIN CERTIFICATE' <<<"$BUILD_CA_BUNDLE") extra CA" \
        "certificate(s) from the host ($CA_SOURCE)"
fi

# 4. The image, with the legacy builder (no BuildKit needed), on the host's network. The
#    build stage gets a tag of its own first, so that removing the tags removes it too.
build() {
    local log=$WORK/build-$1.log
    shift
    if ! DOCKER_BUILDKIT=0 timeout --foreground 1800 docker build --network host --force-rm \
        "${BUILD_ARGS[@]}" "$@" . >"$log" 2>&1; then
        say "docker build failed; its last lines:"
        tail -n 40 "$log"
        return 1
    fi
    grep -E '^(Step [0-9]+/[0-9]+ : (FROM|RUN)|Successfully)' "$log" | cut -c1-110 \
        | sed 's/^/  /' || true
}
t=$SECONDS
CREATED_TAGS+=("$BUILD_STAGE_IMAGE")
build stage --target build --tag "$BUILD_STAGE_IMAGE"
CREATED_TAGS+=("$IMAGE")
build image --tag "$IMAGE"
SIZE=$(docker image inspect --format '{{.Size}}' "$IMAGE")
BASE_SIZE=$(docker image inspect --format '{{.Size}}' "$BASE")
say "built $IMAGE in $(elapsed "$t"): $((SIZE / 1000000)) MB" \
    "($((BASE_SIZE / 1000000)) MB base image + $(((SIZE - BASE_SIZE) / 1000000)) MB relay)"

# 5. Run it and check it end to end.
t=$SECONDS
"$PYTHON" docker/e2e.py --image "$IMAGE" --container "$CONTAINER"
say "end-to-end checks done in $(elapsed "$t")"
