"""The sync as a job: one run under the lock, or one every interval until stopped.

What `relay sync` calls: it builds a run's parts from the settings (SpyCloud's transport, XDR's
client or a dry run's printer, the checkpoint, the lock), runs it and gives back its summary.
A run that cannot start because another sync holds the lock says so in its summary; a failure
of SpyCloud, XDR, the checkpoint or the lock raises a RelayError whose message is fit to print
(no secret).
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from prometheus_client import start_http_server

from spycloud_relay.config import Settings
from spycloud_relay.errors import RelayError
from spycloud_relay.metrics import SYNC_ERRORS, SYNC_INCIDENTS, SYNC_LAST_SUCCESS, SYNC_RECORDS
from spycloud_relay.spycloud.transport import Transport
from spycloud_relay.sync.checkpoint import checkpoints, sync_lock
from spycloud_relay.sync.run import DryRun, Importer, Summary, SyncRun
from spycloud_relay.sync.settings import SyncSettings
from spycloud_relay.sync.xdr import XdrClient

Line = Callable[[str], None]


def run_once(
    settings: Settings, sync: SyncSettings, *, dry_run: bool, progress: Line, out: Line
) -> Summary:
    """One run: the lock taken (else the summary says another sync holds it), every window
    from the checkpoint imported (or printed, in a dry run), the lock given back."""
    lock = sync_lock(settings, sync)
    if not lock.try_acquire():
        return Summary(dry_run=dry_run, skipped='another sync is running: nothing done')
    try:
        with _parts(settings, sync, dry_run, out) as (transport, importer):
            run = SyncRun(
                settings,
                sync,
                transport,
                importer,
                checkpoints(settings, sync),
                progress=progress,
                lost=lambda: lock.lost,
                dry_run=dry_run,
            )
            summary = run.run()
            summary.xdr_requests = getattr(importer, 'requests_made', 0)
    finally:
        lock.release()
    _count(summary)
    return summary


@contextmanager
def _parts(
    settings: Settings, sync: SyncSettings, dry_run: bool, out: Line
) -> Iterator[tuple[Transport, Importer]]:
    """SpyCloud's transport and where bundles go, closed after the run."""
    transport = Transport(settings)
    try:
        if dry_run:
            yield transport, DryRun(out)
            return
        with XdrClient(
            settings,
            sync.xdr_api_url,
            sync.xdr_client_id,
            sync.xdr_client_password,
            sync.external_id_prefix,
        ) as xdr:
            yield transport, xdr
    finally:
        transport.close()


def _count(summary: Summary) -> None:
    """The run in the sync's metrics (served by ``every`` when METRICS_ENABLED is set)."""
    SYNC_RECORDS.inc(summary.records_read)
    SYNC_INCIDENTS.labels('created').inc(summary.incidents_created)
    SYNC_INCIDENTS.labels('exists').inc(summary.incidents_existing)
    SYNC_ERRORS.inc(summary.errors)
    if summary.complete:
        SYNC_LAST_SUCCESS.set(datetime.now(UTC).timestamp())


def every(
    interval_s: float,
    settings: Settings,
    sync: SyncSettings,
    *,
    stop: threading.Event,
    progress: Line,
    out: Line,
) -> None:
    """A run, then another ``interval_s`` after it started, until ``stop`` is set; each
    run's summary (or its failure) printed as one JSON line. A failed run does not end the
    loop: the next one starts from the checkpoint the failed one kept."""
    if settings.metrics_enabled:
        start_http_server(sync.metrics_port)
    while not stop.is_set():
        started = datetime.now(UTC)
        try:
            summary = run_once(settings, sync, dry_run=False, progress=progress, out=out)
        except RelayError as error:
            summary = Summary(failure=f'{error.code}: {error.message}')
        out(summary.line())
        elapsed = (datetime.now(UTC) - started).total_seconds()
        stop.wait(max(0.0, interval_s - elapsed))
