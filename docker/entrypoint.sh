#!/bin/sh
# The image's entry point. `docker run IMAGE` serves the relay (the CMD: gunicorn);
# `docker run IMAGE sync --once` (or check, lookup, tiles, watchlist) runs that `relay` command;
# anything else runs as given (`docker run IMAGE relay --help`, `docker run IMAGE sh`).
set -e
case "$1" in
  sync|check|lookup|tiles|watchlist) exec relay "$@" ;;
esac
exec "$@"
