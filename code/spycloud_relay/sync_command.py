"""``relay sync``: the watchlist's new and changed records into XDR as incidents.

    relay sync --once              # one run (a Kubernetes CronJob, cron); the default
    relay sync --every 15m         # a run every 15 minutes until SIGTERM or Ctrl-C
    relay sync --dry-run           # the bundles a run would import, one JSON line each

The last line of a run is its JSON summary; on a terminal a progress line per window goes to
standard error. Exit codes: 0 every window imported (or another sync was running), 1 a run
that failed or had entities XDR refused, 2 bad usage, 3 bad configuration.
"""

import re
import signal
import sys
import threading

import click

from spycloud_relay.config import ConfigError, Settings
from spycloud_relay.errors import RelayError
from spycloud_relay.logs import configure_logging
from spycloud_relay.sync.run import Summary
from spycloud_relay.sync.service import every, run_once
from spycloud_relay.sync.settings import SyncSettings
from spycloud_relay.terminal import EXIT_CONFIG, EXIT_LOOKUP, fail

DURATION = re.compile(r'(\d+)\s*([smh]?)')
UNIT_S = {'': 1, 's': 1, 'm': 60, 'h': 3600}


def duration_s(text: str) -> int:
    """``15m``, ``1h``, ``90s`` or ``900`` (seconds) in seconds; at least a minute."""
    match = DURATION.fullmatch(text.strip().lower())
    seconds = int(match.group(1)) * UNIT_S[match.group(2)] if match else 0
    if seconds < 60:
        raise click.BadParameter(f'{text!r} is not a duration of a minute or more (15m, 1h, 90s)')
    return seconds


def settings_or_fail() -> tuple[Settings, SyncSettings]:
    """The relay's settings and the sync's, or one line naming the bad one (exit 3)."""
    try:
        return Settings.from_env(), SyncSettings.from_env()
    except ConfigError as error:
        fail(str(error), EXIT_CONFIG)


def progress_line(line: str) -> None:
    if sys.stderr.isatty():
        click.echo(line, err=True)


@click.command()
@click.option('--once', is_flag=True, help='One run, then exit (the default).')
@click.option(
    '--every',
    'interval',
    metavar='DURATION',
    help='A run every DURATION (15m, 1h, 90s) until stopped by SIGTERM or Ctrl-C.',
)
@click.option(
    '--dry-run',
    is_flag=True,
    help='Print the bundles a run would import (one JSON line each); import nothing and '
    'leave the checkpoint where it is.',
)
def sync(once: bool, interval: str | None, dry_run: bool) -> None:
    """Import the watchlist's new and changed SpyCloud records into XDR as incidents.

    Settings come from the environment (SPYCLOUD_API_KEY, XDR_CLIENT_ID, XDR_CLIENT_PASSWORD,
    XDR_API_URL, SYNC_*, REDIS_URL: see "Sync settings" in the README).
    """
    if interval is not None and (once or dry_run):
        raise click.UsageError('--every runs until stopped: not with --once or --dry-run')
    seconds = duration_s(interval) if interval is not None else None
    settings, sync_settings = settings_or_fail()
    configure_logging(settings.log_level)  # JSON lines on standard error, as the relay's
    if seconds is None:
        finish(one_run(settings, sync_settings, dry_run))
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        every(seconds, settings, sync_settings, stop=stop, progress=progress_line, out=click.echo)
    except KeyboardInterrupt:
        stop.set()


def one_run(settings: Settings, sync_settings: SyncSettings, dry_run: bool) -> Summary:
    try:
        return run_once(
            settings, sync_settings, dry_run=dry_run, progress=progress_line, out=click.echo
        )
    except RelayError as error:
        fail(f'{error.code}: {error.message}', EXIT_LOOKUP)


def finish(summary: Summary) -> None:
    """The summary as the last line; exit 1 when the run failed or XDR refused an entity."""
    click.echo(summary.line())
    failed = summary.failure is not None or summary.errors > 0
    sys.exit(EXIT_LOOKUP if failed else 0)
