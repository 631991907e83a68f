"""One sync: the watchlist records SpyCloud published or changed since the checkpoint, into XDR
as grouped incidents (issue 23).

The run reads the span from the checkpoint (or SYNC_LOOKBACK_DAYS back) to the moment it
starts, window by window, oldest first (sync/pull.py); groups each window's records (one
incident per account and source, per infected machine, per stolen session: sync/grouping.py),
maps them to CTIM with deterministic external ids (sync/incidents.py), and imports bundles of
at most SYNC_BUNDLE_MAX entities (sync/bundles.py, sync/xdr.py). The checkpoint moves to a
window's end only when every bundle of it was imported without an ``error`` result, and never
past a window that had one: a re-run, a crash after an import, or a second replica imports the
same entities again, which XDR answers ``exists``.
"""

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from spycloud_relay.config import Settings
from spycloud_relay.deadline import Deadline
from spycloud_relay.errors import RelayError
from spycloud_relay.spycloud.client import SpyCloudClient
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.spycloud.models import BreachRecord, Catalog
from spycloud_relay.spycloud.transport import Transport
from spycloud_relay.sync.bundles import bundles
from spycloud_relay.sync.checkpoint import Checkpoints
from spycloud_relay.sync.grouping import group
from spycloud_relay.sync.incidents import IncidentOptions, incident_entities
from spycloud_relay.sync.pull import PulledWindow, pull_changed
from spycloud_relay.sync.settings import SyncSettings
from spycloud_relay.sync.xdr import ImportResult

log = logging.getLogger(__name__)

# A sync has no caller waiting: its deadline only bounds a SpyCloud that never answers.
RUN_DEADLINE_S = 3600.0
BUNDLE_SOURCE = 'SpyCloud ATO Prevention relay for Cisco XDR'
# CTIA's result of an entity imported → the summary's word for it (``exists``: already there).
OUTCOMES = {'created': 'created', 'exists': 'existing'}


class Importer(Protocol):
    """Where bundles go: XDR (sync/xdr.py's XdrClient), or a dry run's printer."""

    def import_bundle(self, bundle: Mapping[str, Any]) -> list[ImportResult]: ...


@dataclass
class Summary:
    """What a run did: the last line it prints, as JSON."""

    records_read: int = 0
    windows: int = 0
    bundles: int = 0
    incidents_created: int = 0
    incidents_existing: int = 0
    sightings_created: int = 0
    sightings_existing: int = 0
    entities_created: int = 0
    entities_existing: int = 0
    errors: int = 0
    spycloud_calls: int = 0
    xdr_requests: int = 0
    checkpoint: str | None = None
    dry_run: bool = False
    skipped: str | None = None  # why nothing was done (another sync holds the lock)
    failure: str | None = None  # what stopped the run (SpyCloud, XDR, the checkpoint, the lock)

    @property
    def complete(self) -> bool:
        """Every window imported without an error result: the checkpoint reached the end."""
        return self.skipped is None and self.failure is None and self.errors == 0

    def tally(self, results: Iterable[ImportResult]) -> int:
        """Count an import's results; the number of ``error`` ones."""
        errors = 0
        for result in results:
            kind = OUTCOMES.get(result.result)
            if kind is None:  # ``error``, or a result this relay does not know
                errors += 1
                continue
            setattr(self, f'entities_{kind}', getattr(self, f'entities_{kind}') + 1)
            if result.type in ('incident', 'sighting'):
                name = f'{result.type}s_{kind}'
                setattr(self, name, getattr(self, name) + 1)
        self.errors += errors
        return errors

    def as_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def line(self) -> str:
        """The run's last line: its summary as one JSON object."""
        return json.dumps(self.as_json())


@dataclass
class SyncRun:
    """One run's parts: SpyCloud (the transport, and the client for catalogs), where bundles
    go, the checkpoint, and what is told on the way (a progress line per window)."""

    settings: Settings
    sync: SyncSettings
    transport: Transport
    importer: Importer
    checkpoints: Checkpoints
    progress: Callable[[str], None] = lambda line: None
    lost: Callable[[], bool] = lambda: False  # the lock: a run stops when it lost it
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    dry_run: bool = False

    def run(self) -> Summary:
        """Every window from the checkpoint to now; the summary of what was done."""
        summary = Summary(dry_run=self.dry_run)
        until = self.clock()
        since = self.checkpoints.read() or until - timedelta(days=self.sync.lookback_days)
        lookup = Lookup(api_key=self.sync.spycloud_api_key, deadline=Deadline(RUN_DEADLINE_S))
        client = SpyCloudClient(self.settings, transport=self.transport)
        try:
            self._windows(client, lookup, since, until, summary)
        except RelayError as error:  # what was imported stays; the checkpoint says how far
            summary.failure = f'{error.code}: {error.message}'
        summary.spycloud_calls = lookup.stats.spycloud_calls
        return summary

    def _windows(
        self,
        client: SpyCloudClient,
        lookup: Lookup,
        since: datetime,
        until: datetime,
        summary: Summary,
    ) -> None:
        """Each window imported in turn; the checkpoint moved past each window of a run that
        had no error result yet."""
        stuck = False
        windows = pull_changed(
            self.transport,
            lookup,
            since,
            until,
            self.sync.severities,
            window=timedelta(days=self.sync.window_days),
            page_bound=self.sync.window_pages,
        )
        for window in windows:
            stuck = self._window(client, lookup, window, summary) > 0 or stuck
            if not stuck and not self.dry_run:
                self.checkpoints.write(window.until)
                summary.checkpoint = _stamp(window.until)
            if self.lost():
                summary.failure = 'the sync lost its lock: stopped before the next window'
                return

    def _window(
        self, client: SpyCloudClient, lookup: Lookup, window: PulledWindow, summary: Summary
    ) -> int:
        """Import one window's records; the number of ``error`` results."""
        catalogs = _catalogs(client, lookup, window.records)
        options = IncidentOptions(
            now=self.clock(),
            tlp=self.sync.tlp,
            external_id_prefix=self.sync.external_id_prefix,
            spycloud_ui_url=self.settings.spycloud_ui_url,
            password_policy=self.sync.password_policy,
        )
        entities = [incident_entities(g, catalogs, options) for g in group(window.records)]
        errors = 0
        for bundle in bundles(entities, BUNDLE_SOURCE, self.sync.bundle_max):
            results = self.importer.import_bundle(bundle)
            errors += summary.tally(results)
            _log_refused(results)
            summary.bundles += 1
        summary.windows += 1
        summary.records_read += len(window.records)
        self.progress(
            f'{_stamp(window.since)} .. {_stamp(window.until)}: {len(window.records)} records, '
            f'{len(entities)} incidents, {errors} errors'
        )
        return errors


def _catalogs(
    client: SpyCloudClient, lookup: Lookup, records: Iterable[BreachRecord]
) -> dict[int, Catalog]:
    """The breach sources the records name (cache first); one that does not arrive leaves its
    incidents without a title from it, not the run without incidents."""
    ids = sorted({r.source_id for r in records if r.source_id is not None})
    found, _ = client.catalogs(lookup, ids)
    return found


def _log_refused(results: Iterable[ImportResult]) -> None:
    """Each entity XDR refused, by type, external id and XDR's reason (entities carry no
    secret: sync/incidents.py masks them), so that an operator can tell why a run failed."""
    for result in results:
        if result.result not in OUTCOMES:
            log.warning(
                'XDR refused the %s %s: %s',
                result.type or 'entity',
                result.external_ids[0] if result.external_ids else result.original_id,
                result.error or result.result,
            )


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')


class DryRun:
    """A dry run's importer: each bundle printed as one JSON line, nothing sent."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self._out = out

    def import_bundle(self, bundle: Mapping[str, Any]) -> list[ImportResult]:
        self._out(json.dumps(bundle, sort_keys=True))
        return []
