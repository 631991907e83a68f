"""The SpyCloud Enterprise API v2 client: what an observable's exposure is, fast.

A cold lookup costs one call per page of records, then the distinct uncached
breach sources, batched by ten per call (SpyCloud takes a comma list of ids)
and fetched at once: two round trips. A warm one costs only the pages. Cisco's
relay fetched one catalog per record, one at a time with a 250 ms floor.
Everything runs inside the lookup's deadline; when it runs out, what arrived is
answered with a warning naming what is missing.
"""
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from traceback import format_tb
from urllib.parse import quote

from cachetools import TTLCache

from api.errors import (AuthorizationError, InternalServerError, RelayError, RelayWarning,
                        UnknownError, catalog_missing)
from metrics import cache_lookup
from spycloud.deadline import Deadline, DeadlineReached
from spycloud.models import BreachRecord, Catalog, Exposure, MalformedData
from spycloud.transport import BadRequest, Refused, Transport, key_fingerprint

PAGE_ENDPOINTS = {
    'email': 'breach/data/emails/',
    'domain': 'breach/data/domains/',
    'ip': 'breach/data/ips/',
    'ipv6': 'breach/data/ips/',
    'user': 'breach/data/usernames/',
}
CURSOR_EXPIRED = 'cursor'  # SpyCloud's 400 for a stale cursor names the parameter
HEALTH_ENDPOINT = 'breach/catalog/1'

log = logging.getLogger(__name__)


def more_records(observable, shown, hits):
    return RelayWarning(
        'too many records',
        f'Showing the newest {shown} of {hits} SpyCloud records for {observable["value"]}. '
        'Raise the module\'s Entities Limit (up to 1000) to see more, or open the '
        'SpyCloud portal for the full list.')


def refused(observable, error):
    return RelayWarning(
        'permission denied',
        f'SpyCloud refused to look up {observable["value"]} with this API key '
        f'({error.message.removeprefix("Authorization failed: ")}). It searches only the '
        'identifiers on the verified watchlist of the key\'s account.')


def not_a_value(observable):
    return RelayWarning(
        'invalid argument',
        f'{observable["value"]!r} is not a {observable["type"]} SpyCloud can look up: it would '
        'be read as a path step, not a value.')


def page_failed(observable, pages, kept, error):
    return RelayWarning(
        error.code,
        f'SpyCloud failed on page {pages + 1} of the records of {observable["value"]} '
        f'({error.message}); the {kept} record(s) of the first {pages} page(s) are shown.')


def cut_short(deadline, what):
    return RelayWarning('deadline exceeded',
                        f'The lookup deadline ({deadline.seconds:g} s) cut short {what}.')


class SpyCloudClient:
    """Process-wide; the API key is given per call because each XDR module has its own."""

    def __init__(self, settings, transport=None):
        self._settings = settings
        self._transport = transport or Transport(settings)
        self._catalogs = TTLCache(maxsize=settings.catalog_cache_size,
                                  ttl=settings.catalog_cache_ttl_s)
        self._catalogs_lock = threading.Lock()

    @property
    def in_flight(self):
        return self._transport.in_flight

    def close(self):
        self._transport.close()

    def new_deadline(self):
        return Deadline(self._settings.lookup_deadline_s)

    # -- the calls -------------------------------------------------------------

    def check(self, api_key, deadline=None):
        """One cheap authenticated call, for /health."""
        deadline = deadline or self.new_deadline()
        try:
            self._transport.get(api_key, HEALTH_ENDPOINT, deadline=deadline)
        except BadRequest:
            pass  # SpyCloud accepted the key; only the probe's answer was odd
        except DeadlineReached:
            raise UnknownError(f'SpyCloud did not answer the health check within '
                               f'{deadline.seconds:g} s.') from None

    def exposures(self, api_key, observables, limit, deadline=None, query=None):
        """Exposure (or the RelayError that stopped it) per observable, in order, concurrently.

        ``query`` holds the filters every records call carries (``severity``, ``since``).
        """
        deadline = deadline or self.new_deadline()
        with self._pool(len(observables), 'lookup') as pool:
            futures = [pool.submit(self.exposure, api_key, o, limit, deadline, query)
                       for o in observables]
            wait(futures, timeout=deadline.remaining() + 1.0)
        results = []
        for observable, future in zip(observables, futures):
            error = future.exception() if future.done() else None
            if not future.done():
                results.append(Exposure(observable, [], 0, {}, [cut_short(
                    deadline, f'the lookup of {observable["value"]}')]))
            elif isinstance(error, RelayError):
                results.append(error)
            elif error is not None:
                # A defect in one lookup must not lose the others: that one is an internal error.
                log.error('lookup failed unexpectedly (%s)', type(error).__name__,
                          extra={'traceback': ''.join(format_tb(error.__traceback__))})
                results.append(InternalServerError(
                    f'The lookup of {observable["value"]} failed unexpectedly.'))
            else:
                results.append(future.result())
        return results

    def _pool(self, tasks, name):
        """A pool of this call's own: one request's lookups never queue behind another's."""
        return _CallPool(min(tasks, self._settings.spycloud_max_workers), name)

    def exposure(self, api_key, observable, limit, deadline=None, query=None):
        """The newest ``limit`` records of an observable, with their breach sources."""
        deadline = deadline or self.new_deadline()
        if not observable['value'].strip('.'):
            return Exposure(observable, [], 0, {}, [not_a_value(observable)])
        try:
            records, hits, warnings = self.breach_records(api_key, observable, limit, deadline,
                                                          query)
        except Refused as error:
            return Exposure(observable, [], 0, {}, [refused(observable, error)])
        ids = list(dict.fromkeys(r.source_id for r in records if r.source_id is not None))
        catalogs, missing_reasons = self.catalogs(api_key, ids, deadline)
        unanswered = [i for i in ids if i not in catalogs and i not in missing_reasons]
        for catalog_id in ids:
            if catalog_id in missing_reasons:
                warnings.append(missing_reasons[catalog_id])
        if unanswered:
            warnings.append(cut_short(deadline, f'breach sources {_ids(unanswered)} of '
                                                f'{observable["value"]}: their sightings are '
                                                'shown without source details'))
        if hits > len(records) >= limit:  # the limit stopped the paging, not a failure
            warnings.append(more_records(observable, len(records), hits))
        return Exposure(observable=observable, records=records, hits=hits,
                        catalogs=catalogs, warnings=warnings)

    def breach_records(self, api_key, observable, limit, deadline=None, query=None):
        """Follows ``cursor`` until ``limit`` records are collected or SpyCloud has no more."""
        deadline = deadline or self.new_deadline()
        path = PAGE_ENDPOINTS[observable['type']] + quote(observable['value'], safe='@')
        records, seen, warnings = [], set(), []
        hits, cursor, skipped, pages = 0, None, 0, 0
        while True:
            params = dict(query or {})
            if cursor:
                params['cursor'] = cursor  # the filters go along: some SpyCloud clients rely on it
            try:
                page = self._transport.get(api_key, path, params or None, deadline)
            except BadRequest as error:
                message = str(error)
                refused_filters = [name for name in (query or {})
                                   if f"'{name}'" in message.lower()]
                if cursor and CURSOR_EXPIRED in message.lower():
                    warnings.append(RelayWarning(
                        'incomplete', f'SpyCloud\'s paging cursor for {observable["value"]} '
                                      f'expired after {pages} page(s); the records fetched '
                                      'so far are shown.'))
                elif refused_filters:
                    # Not "no data": the module's filter was refused, so nothing was searched.
                    warnings.append(RelayWarning(
                        'invalid argument', f'SpyCloud refused the {refused_filters[0]} filter '
                                            f'for {observable["value"]}: {message}'))
                break  # otherwise SpyCloud's 400 means no data for this selector
            except DeadlineReached:
                warnings.append(cut_short(deadline, f'the breach records of {observable["value"]}'
                                                    f' after {pages} page(s)'))
                break
            except RelayError as error:
                if not pages:
                    raise
                warnings.append(page_failed(observable, pages, len(records), error))
                break  # what the earlier pages brought is kept
            pages += 1
            hits = max(hits, _count(page.get('hits')))
            results = page.get('results')
            for raw in results if isinstance(results, list) else ():
                try:
                    record = BreachRecord.from_api(raw)
                except MalformedData:
                    skipped += 1
                    continue
                if record.document_id not in seen:
                    seen.add(record.document_id)
                    records.append(record)
            cursor = page.get('cursor')
            if len(records) >= limit or not isinstance(cursor, str) or not cursor.strip():
                break
        if skipped:
            warnings.append(RelayWarning(
                'invalid data', f'SpyCloud sent {skipped} malformed breach record(s) for '
                                f'{observable["value"]}; they are left out.'))
        records.sort(key=lambda record: record.published, reverse=True)
        return records[:limit], max(hits, len(records)), warnings

    def catalogs(self, api_key, ids, deadline=None):
        """(found, reasons): cache first, then the rest fetched at once within the deadline.

        ``found`` maps id → Catalog; ``reasons`` maps the ids SpyCloud answered without a
        catalog to a warning. Ids in neither were cut short by the deadline.
        """
        deadline = deadline or self.new_deadline()
        fingerprint = key_fingerprint(api_key)
        found, reasons, todo = {}, {}, []
        with self._catalogs_lock:
            for catalog_id in ids:
                cached = self._catalogs.get((fingerprint, catalog_id))
                if cached is not None:
                    found[catalog_id] = cached
                else:
                    todo.append(catalog_id)
        cache_lookup('catalog', hits=len(found), misses=len(todo))
        deadline.stats.add(cache_hits=len(found), cache_misses=len(todo))
        if not todo:
            return found, reasons
        batch = self._settings.spycloud_catalog_batch
        chunks = [todo[i:i + batch] for i in range(0, len(todo), batch)]
        with self._pool(len(chunks), 'catalog') as pool:
            futures = {pool.submit(self._fetch_catalogs, api_key, chunk, deadline): chunk
                       for chunk in chunks}
            # Each fetch gives up at the deadline itself; the margin only covers its wrap-up.
            done, _ = wait(futures, timeout=deadline.remaining() + 0.5)
        for future in done:
            chunk, error = futures[future], future.exception()
            if isinstance(error, AuthorizationError):
                raise error
            if isinstance(error, DeadlineReached):
                continue
            if isinstance(error, RelayError):
                for catalog_id in chunk:
                    reasons[catalog_id] = RelayWarning(
                        error.code, f'SpyCloud did not return results for {catalog_id}: '
                                    f'{error.message}')
                continue
            if error is not None:
                raise error
            fetched = future.result()
            with self._catalogs_lock:
                for catalog_id in chunk:
                    if catalog_id in fetched:
                        found[catalog_id] = self._catalogs[(fingerprint, catalog_id)] = \
                            fetched[catalog_id]
                    else:
                        reasons[catalog_id] = catalog_missing(catalog_id)
        return found, reasons

    def _fetch_catalogs(self, api_key, ids, deadline):
        """id → Catalog for the ids SpyCloud knows, in one call (``breach/catalog/1,2,3``).

        SpyCloud documents the comma list; should it refuse one (400), each id is asked alone.
        """
        path = 'breach/catalog/' + ','.join(str(i) for i in ids)
        try:
            page = self._transport.get(api_key, path, None, deadline)
        except BadRequest:
            if len(ids) == 1:
                return {}
            found = {}
            for catalog_id in ids:
                found.update(self._fetch_catalogs(api_key, [catalog_id], deadline))
            return found
        wanted, found = set(ids), {}
        results = page.get('results')
        for raw in results if isinstance(results, list) else ():
            try:
                catalog = Catalog.from_api(raw)
            except MalformedData:
                continue
            if catalog.id in wanted:
                found.setdefault(catalog.id, catalog)
        return found


class _CallPool:
    """Runs one call's tasks: inline when there is one (no thread to start), else on threads
    of its own, left to finish on their own (each bounded by the deadline) once waited for."""

    def __init__(self, workers, name):
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) \
            if workers > 1 else None

    def submit(self, function, *args):
        if self._executor is not None:
            return self._executor.submit(function, *args)
        future = Future()
        try:
            future.set_result(function(*args))
        except BaseException as error:  # noqa: B902 - handed to the caller, as an executor does
            future.set_exception(error)
        return future

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


def _count(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _ids(ids):
    shown = ', '.join(str(i) for i in ids[:10])
    return shown + (f' and {len(ids) - 10} more' if len(ids) > 10 else '')
