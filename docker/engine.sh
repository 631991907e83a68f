#!/usr/bin/env bash
# A Docker engine for `make docker-test` on a machine that has none running (as on CI).
#
# Sourced by docker/docker-test.sh for its functions, or run for the helper targets:
#   bash docker/engine.sh start   # make docker-daemon: a lasting dockerd on the default socket
#   bash docker/engine.sh stop    # make docker-daemon-stop
#
# Packages come from the machine's package manager (Debian's docker.io and debootstrap, with
# apt-get as root), only when the commands are missing. dockerd is started by hand (no
# systemd) with flags that work in an unprivileged-network sandbox: no iptables, no bridge
# (containers and builds use --network host), overlay2 storage with vfs as the fallback.
# Settings: DOCKERD_STORAGE_DRIVERS (tried in order, default "overlay2 vfs"), DOCKERD_FLAGS
# (extra flags), ENGINE_WAIT_S (how long to wait for a starting daemon, default 60).

engine_log() { printf 'docker-engine: %s\n' "$*" >&2; }

_apt_updated=0
# apt_install PACKAGE...: install Debian packages (root; one `apt-get update` per process).
apt_install() {
    if [ "$(id -u)" != 0 ]; then
        engine_log "need root to install $* (or install them first): giving up"
        return 1
    fi
    if ! command -v apt-get >/dev/null; then
        engine_log "no apt-get: install $* by hand"
        return 1
    fi
    local log
    log=$(mktemp "${TMPDIR:-/tmp}/relay-apt.XXXXXX")
    engine_log "installing $* with apt-get"
    if { [ "$_apt_updated" = 1 ] || apt-get update -q; } >"$log" 2>&1 \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" \
            >>"$log" 2>&1; then
        _apt_updated=1
        rm -f "$log"
        return 0
    fi
    engine_log "apt-get failed; its last lines:"
    tail -n 20 "$log" >&2
    rm -f "$log"
    return 1
}

# ensure_engine_packages: the docker CLI, dockerd, containerd and runc.
ensure_engine_packages() {
    local missing=0 cmd
    for cmd in docker dockerd containerd runc; do
        command -v "$cmd" >/dev/null || missing=1
    done
    if [ "$missing" = 1 ]; then
        apt_install docker.io || return 1
    fi
}

# daemon_up: a daemon answers at DOCKER_HOST (or the default socket).
daemon_up() {
    timeout --foreground 20 docker info >/dev/null 2>&1
}

# start_dockerd DIR SOCKET DATA_ROOT: start dockerd in the background (its own session, all
# output in DIR/dockerd.log, pid in DIR/dockerd.pid, exec-root DIR/exec) and wait until it
# answers on SOCKET. Tries each storage driver in turn; returns non-zero if none starts.
start_dockerd() {
    local dir=$1 socket=$2 data_root=$3 driver pid waited root=""
    local wait_s=${ENGINE_WAIT_S:-60} path
    mkdir -p "$dir"
    for driver in ${DOCKERD_STORAGE_DRIVERS:-overlay2 vfs}; do
        # What dockerd makes outside its directories, to remove when it stops.
        : >"$dir/dockerd.creates"
        for path in /etc/docker/key.json /run/docker/plugins /run/docker; do
            [ -e "$path" ] || echo "$path" >>"$dir/dockerd.creates"
        done
        # The first driver uses DATA_ROOT, a fallback its own (no mix of two drivers' data).
        if [ -z "$root" ]; then root=$data_root; else root=$data_root-$driver; fi
        mkdir -p "$root"
        engine_log "starting dockerd (storage driver $driver, log $dir/dockerd.log)"
        # shellcheck disable=SC2086  # DOCKERD_FLAGS is a list of flags
        setsid dockerd --host "unix://$socket" --data-root "$root" \
            --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
            --iptables=false --ip6tables=false --bridge=none --storage-driver "$driver" \
            ${DOCKERD_FLAGS:-} </dev/null >>"$dir/dockerd.log" 2>&1 &
        pid=$!
        echo "$pid" >"$dir/dockerd.started"
        echo "$root" >"$dir/dockerd.data-root"
        for ((waited = 0; waited < wait_s * 2; waited++)); do
            if DOCKER_HOST="unix://$socket" daemon_up; then
                # dockerd's own pid, should setsid have forked
                pid=$(cat "$dir/dockerd.pid" 2>/dev/null || echo "$pid")
                echo "$pid" >"$dir/dockerd.started"
                engine_log "dockerd $pid is up (storage driver $driver, data in $root)"
                return 0
            fi
            kill -0 "$pid" 2>/dev/null \
                || kill -0 "$(cat "$dir/dockerd.pid" 2>/dev/null || echo none)" 2>/dev/null \
                || break
            sleep 0.5
        done
        engine_log "dockerd did not start with $driver; its last lines:"
        tail -n 5 "$dir/dockerd.log" >&2
        stop_dockerd "$dir"
    done
    return 1
}

# stop_dockerd DIR: stop the dockerd that start_dockerd DIR started (and its containerd),
# then unmount whatever it left mounted under DIR.
stop_dockerd() {
    local dir=$1 pid containerd_pid i path
    pid=$(cat "$dir/dockerd.started" 2>/dev/null || true)
    containerd_pid=$(cat "$dir/exec/containerd/containerd.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 60; i++)); do
            kill -0 "$pid" 2>/dev/null \
                || kill -0 "$(cat "$dir/dockerd.pid" 2>/dev/null || echo none)" 2>/dev/null \
                || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            engine_log "dockerd $pid did not stop in 30 s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    if [ -n "$containerd_pid" ] && kill -0 "$containerd_pid" 2>/dev/null; then
        kill -TERM "$containerd_pid" 2>/dev/null || true
        sleep 1
        kill -KILL "$containerd_pid" 2>/dev/null || true
    fi
    [ -f "$dir/dockerd.data-root" ] && unmount_under "$(cat "$dir/dockerd.data-root")"
    unmount_under "$dir"
    if [ -f "$dir/dockerd.creates" ]; then
        while read -r path; do
            if [ -d "$path" ]; then rmdir "$path" 2>/dev/null || true; else rm -f "$path"; fi
        done <"$dir/dockerd.creates"
    fi
    rm -f "$dir/dockerd.started" "$dir/dockerd.data-root" "$dir/dockerd.creates"
}

# unmount_under DIR: unmount every mount point below DIR, deepest first.
unmount_under() {
    local dir mount_point
    dir=$(realpath -m "$1")
    findmnt -rn -o TARGET 2>/dev/null | grep -F "$dir/" | sort -r | while read -r mount_point; do
        umount "$mount_point" 2>/dev/null || umount -l "$mount_point" 2>/dev/null || true
    done || true
    if findmnt -M "$dir" >/dev/null 2>&1; then
        umount "$dir" 2>/dev/null || umount -l "$dir" 2>/dev/null || true
    fi
}

# remove_tree DIR: unmount what is mounted below DIR, then delete it, never crossing into a
# mount point that is still there (a debootstrap target mounts /proc and /sys).
remove_tree() {
    [ -e "$1" ] || return 0
    unmount_under "$1"
    if findmnt -rn -o TARGET 2>/dev/null | grep -qF "$(realpath -m "$1")/"; then
        engine_log "still mounted below $1: left in place"
        return 1
    fi
    rm -rf --one-file-system "$1"
}

# A stand-in for python:3.11-slim where no registry of images can be reached: Debian
# bookworm (whose python3 is 3.11, as Pipfile.lock requires) with python3, venv and the CA
# certificates, made by debootstrap from Debian's packages and imported as an image.
BASE_SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,ca-certificates
LASTING_BASE_TAG=spycloud-xdr-relay-base:$BASE_SUITE

# import_base_image DIR TAG: debootstrap into DIR/rootfs, import it as TAG, remove DIR/rootfs.
import_base_image() {
    local dir=$1 tag=$2 rootfs=$1/rootfs
    if ! command -v debootstrap >/dev/null; then
        apt_install debootstrap || return 1
    fi
    mkdir -p "$dir"
    engine_log "debootstrap $BASE_SUITE (minbase + $BASE_PACKAGES) into $rootfs"
    if ! timeout --foreground 900 debootstrap --variant=minbase --include="$BASE_PACKAGES" \
        "$BASE_SUITE" "$rootfs" >"$dir/debootstrap.log" 2>&1; then
        engine_log "debootstrap failed; its last lines:"
        tail -n 20 "$dir/debootstrap.log" >&2
        remove_tree "$rootfs"
        return 1
    fi
    unmount_under "$rootfs"
    # What an image does not need: package downloads and lists, documentation, locales.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/man "$rootfs"/usr/share/info \
        "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*.log "$rootfs"/tmp/*
    find "$rootfs"/usr/share/doc -type f ! -name copyright -delete 2>/dev/null || true
    tar --numeric-owner -C "$rootfs" -c . | docker import \
        --change 'CMD ["python3"]' --message "debootstrap $BASE_SUITE minbase" - "$tag" >/dev/null
    local status=$?
    remove_tree "$rootfs"
    [ "$status" = 0 ] && engine_log "imported the base image $tag"
    return "$status"
}

# The helper targets: a lasting daemon on the default socket, data in /var/lib/docker.
LASTING_DIR=${DOCKER_DAEMON_DIR:-/var/run/spycloud-relay-dockerd}

engine_main() {
    set -euo pipefail
    case "${1:-}" in
    start)
        ensure_engine_packages
        if daemon_up; then
            engine_log "a Docker daemon already answers: nothing to start"
        else
            start_dockerd "$LASTING_DIR" /var/run/docker.sock /var/lib/docker
            engine_log "left running; stop it with: make docker-daemon-stop"
        fi
        # The base image that make docker-test would otherwise make anew on every run.
        if ! docker image inspect python:3.11-slim >/dev/null 2>&1 \
            && ! docker image inspect "$LASTING_BASE_TAG" >/dev/null 2>&1; then
            local tmp status=0
            tmp=$(mktemp -d "${TMPDIR:-/tmp}/relay-base.XXXXXX")
            import_base_image "$tmp" "$LASTING_BASE_TAG" || status=$?
            remove_tree "$tmp"
            return "$status"
        fi
        ;;
    stop)
        if [ ! -f "$LASTING_DIR/dockerd.started" ]; then
            engine_log "no dockerd started by 'make docker-daemon': nothing to stop"
            return 0
        fi
        stop_dockerd "$LASTING_DIR"
        engine_log "stopped (images stay in /var/lib/docker)"
        ;;
    *)
        echo "usage: $0 start|stop" >&2
        return 2
        ;;
    esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    engine_main "$@"
fi
