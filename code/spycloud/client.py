"""The SpyCloud Enterprise API v2 client: what an observable's exposure is, fast.

A cold lookup costs one call per page of records, then the distinct uncached
breach sources, batched by ten per call (SpyCloud takes a comma list of ids)
and fetched at once: two round trips. A warm one costs only the pages. A verdict
costs one filtered call per ten e-mails (spycloud/batching.py) or per username.
Everything runs inside the lookup's deadline; when it runs out, what arrived is
answered with a warning naming what is missing.
"""

import itertools
import logging
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import date, timedelta
from functools import partial
from traceback import format_tb
from urllib.parse import quote

import state
from deadline import Deadline, DeadlineReached
from errors import AuthorizationError, InternalServerError, RelayError, RelayWarning, UnknownError
from metrics import cache_lookup
from spycloud import warnings
from spycloud.batching import EmailBatching, account
from spycloud.failures import BadRequest, Refused
from spycloud.lookup import Lookup, VerdictRule
from spycloud.models import BreachRecord, Catalog, Evidence, Exposure, MalformedData
from spycloud.transport import Transport
from spycloud.watchlist import Watchlist
from state import MISSING

PAGE_ENDPOINTS = {
    'email': 'breach/data/emails/',
    'domain': 'breach/data/domains/',
    'ip': 'breach/data/ips/',
    'ipv6': 'breach/data/ips/',
    'user': 'breach/data/usernames/',
}
CURSOR_EXPIRED = 'cursor'  # SpyCloud's 400 for a stale cursor names the parameter
HEALTH_ENDPOINT = 'breach/catalog/1'
WATCHLIST_RECORDS = 'breach/data/watchlist'
# Verdicts are about accounts: an exposed e-mail or username, not a whole domain or an IP.
VERDICT_TYPES = ('email', 'user')

log = logging.getLogger(__name__)


class SpyCloudClient:
    """Process-wide (pool, caches, limiter); each call takes the Lookup of its request."""

    def __init__(self, settings, transport=None, catalogs=None, records=None):
        self._settings = settings
        self._transport = transport or Transport(settings)
        self._catalogs = catalogs or state.cache(
            settings, 'catalogs', settings.catalog_cache_size, settings.catalog_cache_ttl_s
        )
        self._records = records or state.cache(
            settings, 'records', settings.records_cache_size, settings.records_cache_ttl_s
        )
        self.watchlist = Watchlist(self._transport)
        self._batching = EmailBatching(settings.spycloud_email_batch)

    def __enter__(self) -> 'SpyCloudClient':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def in_flight(self) -> int:
        return self._transport.in_flight

    def close(self) -> None:
        self._transport.close()

    def lookup(
        self,
        api_key: str,
        limit: int = 100,
        filters: Mapping[str, str] | None = None,
        verdicts: VerdictRule | None = None,
    ) -> Lookup:
        """A request's context, with a fresh deadline of LOOKUP_DEADLINE_S."""
        return Lookup(
            api_key=api_key,
            deadline=Deadline(self._settings.lookup_deadline_s),
            limit=limit,
            filters=filters or {},
            verdicts=verdicts,
        )

    # -- the calls -------------------------------------------------------------

    def check(self, lookup: Lookup) -> None:
        """One cheap authenticated call, for /health."""
        try:
            self._transport.get(lookup, HEALTH_ENDPOINT)
        except BadRequest:
            pass  # SpyCloud accepted the key; only the probe's answer was odd
        except DeadlineReached:
            raise UnknownError(
                f'SpyCloud did not answer the health check within {lookup.deadline.seconds:g} s.'
            ) from None

    def exposures(self, lookup: Lookup, observables: list) -> list:
        """Exposure (or the RelayError that stopped it) per observable, in order, concurrently.

        When observe's filters are narrower than the verdict rule, no account's own records can
        decide its verdict, so the verdicts of all its accounts are asked at once beside the
        records, as deliberate asks them (one cache read, ten e-mails per call)."""
        rule = lookup.verdicts
        accounts = [o for o in observables if o['type'] in VERDICT_TYPES and o['value'].strip('.')]
        if rule is None or not accounts or _covers(lookup.filters, rule):
            return self._per_observable(lookup, observables, self.exposure)
        known, pending = self._cached_evidence(lookup, accounts)
        with self._pool(2 if pending else 1, 'ahead') as pool:
            future = pool.submit(self._judged_all, lookup, pending) if pending else None
            ahead = _VerdictsAhead(accounts, known, pending, future)
            return self._per_observable(lookup, observables, partial(self.exposure, ahead=ahead))

    def verdicts(self, lookup: Lookup, observables: list) -> list:
        """Per observable, an Exposure holding only the evidence for a verdict (None when
        there is none) and its warnings, or the RelayError that stopped it.

        The cache is asked once for all of them (one MGET on Redis); only what it does not
        hold is looked up, concurrently, so a warm request starts no thread at all."""
        known, pending = self._cached_evidence(lookup, observables)
        fetched = iter(self._judged_all(lookup, pending))
        return [
            Exposure(o, [], 0, {}, evidence=known[id(o)]) if id(o) in known else next(fetched)
            for o in observables
        ]

    def _cached_evidence(self, lookup, observables):
        """({id(observable): evidence} the cache holds, read at once; the others)."""
        keys = {id(o): _evidence_key(lookup, o) for o in observables if o['value'].strip('.')}
        cached = self._records.get_many(list(keys.values()), secret=lookup.api_key)
        lookup.stats.add(cache_hits=len(cached), cache_misses=len(keys) - len(cached))
        known = {i: cached[k] for i, k in keys.items() if k in cached}
        return known, [o for o in observables if id(o) not in known]

    def each(self, lookup: Lookup, items: list, task, describe=str) -> list:
        """``task(lookup, item)`` for every item at once, on this call's own pool: its result,
        or the RelayError that stopped it (a ``deadline exceeded`` warning when it did not end
        in time; an ``internal error`` for a defect, which spoils only its own item)."""
        with self._pool(len(items), 'lookup') as pool:
            futures = [pool.submit(task, lookup, item) for item in items]
            wait(futures, timeout=lookup.deadline.remaining() + 1.0)
        return [
            _settled(lookup, describe(item), future)
            for item, future in zip(items, futures, strict=True)
        ]

    def _per_observable(self, lookup, observables, task):
        results = self.each(lookup, observables, task, describe=lambda o: o['value'])
        return [
            Exposure(o, [], 0, {}, [r]) if r.__class__ is RelayWarning else r
            for o, r in zip(observables, results, strict=True)
        ]

    def _judged_all(self, lookup, observables):
        """The verdict lookups of what the cache did not hold, e-mails batched, all at once."""
        groups = self._batching.groups(observables)
        results = self.each(lookup, groups, self._judged_group, describe=_values)
        settled = {}
        for group, result in zip(groups, results, strict=True):
            for observable, exposure in zip(group, _spread(lookup, group, result), strict=True):
                settled[id(observable)] = exposure
        return [settled[id(o)] for o in observables]

    def _judged_group(self, lookup: Lookup, group: list) -> list:
        """One call for a group of e-mails (see spycloud/batching.py); each one alone when
        that call cannot settle them all."""
        if len(group) == 1:
            return [self.judged(lookup, group[0])]
        rule = lookup.verdicts
        assert rule is not None, 'a verdict lookup needs the rule'
        values = dict.fromkeys(account(o['value']) for o in group)
        path = PAGE_ENDPOINTS['email'] + ','.join(quote(v, safe='@') for v in values)
        try:
            page = self._transport.get(lookup, path, rule.filters)
        except BadRequest:
            self._batching.refused()
            page = None
        except Refused:
            page = None  # a 403 for one address the key may not search: each is asked alone
        except DeadlineReached:
            return [Exposure(o, [], 0, {}, [_verdict_cut_short(lookup, o)]) for o in group]
        found = self._batching.read(page, group) if page is not None else None
        if found is None:
            alone = self._per_observable(lookup, group, self.judged)
            exposed = any(isinstance(e, Exposure) and e.evidence is not None for e in alone)
            self._batching.asked_alone(page, exposed)
            return alone
        evidence = {
            id(o): _page_evidence(rule, o, {'results': found[account(o['value'])]}) for o in group
        }
        self._records.set_many(
            {_evidence_key(lookup, o): evidence[id(o)] for o in group}, secret=lookup.api_key
        )
        return [Exposure(o, [], 0, {}, evidence=evidence[id(o)]) for o in group]

    def judged(self, lookup: Lookup, observable: dict) -> Exposure:
        """The verdict lookup of one observable the cache does not hold: one call."""
        if not observable['value'].strip('.'):
            return Exposure(observable, [], 0, {}, [warnings.not_a_value(observable)])
        try:
            evidence = self._fetched_evidence(lookup, observable)
        except Refused as error:
            return Exposure(observable, [], 0, {}, [warnings.refused(observable, error)])
        except DeadlineReached:
            return Exposure(observable, [], 0, {}, [_verdict_cut_short(lookup, observable)])
        return Exposure(observable, [], 0, {}, evidence=evidence)

    def _fetched_evidence(self, lookup: Lookup, observable: dict) -> Evidence | None:
        """The qualifying records of ``lookup.verdicts`` for an observable, from the first page
        of a filtered call (one qualifying record decides), and kept in the cache."""
        rule = lookup.verdicts
        assert rule is not None, 'a verdict lookup needs the rule'
        try:
            page = self._transport.get(lookup, _records_path(observable), rule.filters)
        except BadRequest:
            return None  # SpyCloud's 400: no data for this selector (not cached)
        evidence = _page_evidence(rule, observable, page)
        self._records.set(_evidence_key(lookup, observable), evidence, secret=lookup.api_key)
        return evidence

    def exposure(
        self, lookup: Lookup, observable: dict, ahead: '_VerdictsAhead | None' = None
    ) -> Exposure:
        """The newest ``lookup.limit`` records of an observable, with their breach sources."""
        if not observable['value'].strip('.'):
            return Exposure(observable, [], 0, {}, [warnings.not_a_value(observable)])
        try:
            records, hits, found = self.breach_records(lookup, observable)
        except Refused as error:
            return Exposure(observable, [], 0, {}, [warnings.refused(observable, error)])
        ids = list(dict.fromkeys(r.source_id for r in records if r.source_id is not None))
        catalogs, reasons, evidence = self._sources_and_verdict(
            lookup, observable, records, hits, found, ids, ahead
        )
        found.extend(reasons[i] for i in ids if i in reasons)
        unanswered = [i for i in ids if i not in catalogs and i not in reasons]
        if unanswered:
            found.append(
                warnings.cut_short(
                    lookup.deadline,
                    f'breach sources {_ids(unanswered)} of {observable["value"]}: '
                    'their sightings are shown without source details',
                )
            )
        if hits > len(records) >= lookup.limit:  # the limit stopped the paging, not a failure
            found.append(warnings.more_records(observable, len(records), hits))
        return Exposure(
            observable=observable,
            records=records,
            hits=hits,
            catalogs=catalogs,
            warnings=found,
            evidence=evidence,
        )

    def _sources_and_verdict(self, lookup, observable, records, hits, found, ids, ahead):
        """The catalogs and the verdict's evidence. When the verdict takes a call (its records
        cannot decide it and the cache does not hold it), that call and the catalogs' go at
        once, neither waiting for the other; else no thread is started for it."""
        if ahead is not None and ahead.holds(observable):
            catalogs, reasons = self.catalogs(lookup, ids)
            evidence = ahead.evidence(lookup, observable, found)
        else:
            evidence = self._evidence_at_hand(lookup, observable, records, hits, found)
            if evidence is MISSING:
                with self._pool(2, 'beside') as pool:
                    judged = pool.submit(self._evidence_beside, lookup, observable, found)
                    catalogs, reasons = self.catalogs(lookup, ids)
                    wait([judged], timeout=lookup.deadline.remaining() + 1.0)
                evidence = judged.result() if judged.done() else None
            else:
                catalogs, reasons = self.catalogs(lookup, ids)
        source = evidence.newest.source_id if evidence is not None else None
        if source is not None and source not in catalogs:  # for the judgement's link
            catalogs.update(self.catalogs(lookup, [source])[0])
        return catalogs, reasons, evidence

    def _evidence_at_hand(self, lookup, observable, records, hits, found):
        """Observe's verdict when no call is needed: None without a rule (or for a domain or an
        IP), decided from its own records when they hold every candidate, or cached; MISSING
        when it takes the verdict call."""
        rule = lookup.verdicts
        if rule is None or observable['type'] not in VERDICT_TYPES:
            return None
        key = _evidence_key(lookup, observable)
        if not found and hits == len(records) and _covers(lookup.filters, rule):
            evidence = _evidence(rule, records, hits=None)
            self._records.set(key, evidence, secret=lookup.api_key)
            return evidence
        cached = self._records.get(key, secret=lookup.api_key)
        lookup.stats.add(**{'cache_hits' if cached is not MISSING else 'cache_misses': 1})
        return cached

    def _evidence_beside(self, lookup, observable, found):
        """Observe's verdict call; its failure is a warning, never the lookup's."""
        try:
            return self._fetched_evidence(lookup, observable)
        except DeadlineReached:
            _cut_short_once(lookup, observable, found)
        except RelayError as error:
            found.append(warnings.verdict_failed(observable, error))
        return None

    def breach_records(self, lookup: Lookup, observable: dict) -> tuple:
        """(records, hits, warnings): follows ``cursor`` until ``lookup.limit`` records are
        collected, SpyCloud has no more, or a failure stops it (earlier pages are kept)."""
        key = (
            'records',
            lookup.fingerprint,
            observable['type'],
            observable['value'],
            tuple(sorted(lookup.filters.items())),
            lookup.limit,
        )
        cached = self._records.get(key, secret=lookup.api_key)
        if cached is not MISSING:
            lookup.stats.add(cache_hits=1)
            return cached[0], cached[1], []
        path = _records_path(observable)
        pages = _Pages(observable, lookup.limit)
        while not pages.done:
            try:
                page = self._transport.get(lookup, path, {**lookup.filters, **pages.cursor})
            except BadRequest as error:
                pages.stop(_bad_request(observable, lookup.filters, error, pages))
            except DeadlineReached:
                pages.stop(
                    warnings.cut_short(
                        lookup.deadline,
                        f'the breach records of {observable["value"]} after {pages.count} page(s)',
                    )
                )
            except RelayError as error:
                if not pages.count:
                    raise
                pages.stop(warnings.page_failed(observable, pages.count, len(pages.records), error))
            else:
                pages.add(page)
        records, hits, found = pages.result()
        if not found:  # only whole answers are kept: a cut-short one is asked again
            self._records.set(key, (records, hits), secret=lookup.api_key)
        return records, hits, found

    def catalogs(self, lookup: Lookup, ids: list) -> tuple:
        """(found, reasons): cache first, then the rest fetched at once within the deadline.

        ``found`` maps id → Catalog; ``reasons`` maps the ids SpyCloud answered without a
        catalog to a warning. Ids in neither were cut short by the deadline.
        """
        found, todo = self._cached_catalogs(lookup, ids)
        cache_lookup('catalog', hits=len(found), misses=len(todo))
        lookup.stats.add(cache_hits=len(found), cache_misses=len(todo))
        reasons: dict = {}
        if not todo:
            return found, reasons
        batch = self._settings.spycloud_catalog_batch
        chunks = [todo[i : i + batch] for i in range(0, len(todo), batch)]
        with self._pool(len(chunks), 'catalog') as pool:
            futures = {pool.submit(self._fetch_catalogs, lookup, chunk): chunk for chunk in chunks}
            # Each fetch gives up at the deadline itself; the margin only covers its wrap-up.
            done, _ = wait(futures, timeout=lookup.deadline.remaining() + 0.5)
        for future in done:
            fetched = _fetched(future, futures[future], reasons)
            self._remember(lookup, fetched)
            found.update(fetched)
        return found, reasons

    def watchlist_day(self, lookup: Lookup, day: date, sink) -> int:
        """Every watchlist record SpyCloud published on ``day``, page by page, handed to
        ``sink(record, day)`` once each as each page arrives; the records read. Only the day's
        document ids are kept, to hand a record repeated on a later page once (as observe's
        pages do): the slices of other days never count it, as it is not their day.

        ``until`` is the next day: whether SpyCloud reads a date-only ``until`` as that day's
        start or end, the slice holds all of ``day``, and the sink drops what is not its day.
        SpyCloud's 400 (a refused parameter, an expired cursor) raises a RelayWarning that names
        it, logged as a warning: for a whole watchlist it does not mean "no records".
        """
        params = {'since': day.isoformat(), 'until': (day + timedelta(days=1)).isoformat()}
        cursor: dict[str, str] = {}
        seen: set[str] = set()
        for pages in itertools.count():
            try:
                page = self._transport.get(lookup, WATCHLIST_RECORDS, {**params, **cursor})
            except BadRequest as error:
                detail = str(error)
                log.warning(
                    'SpyCloud refused the watchlist records of %s', day, extra={'detail': detail}
                )
                raise warnings.day_refused(detail, pages) from None
            results = page.get('results')
            for raw in results if isinstance(results, list) else ():
                try:
                    record = BreachRecord.from_api(raw)
                except MalformedData:
                    continue
                if record.document_id not in seen:
                    seen.add(record.document_id)
                    sink(record, day)
            following = page.get('cursor')
            if not isinstance(following, str) or not following.strip():
                break
            cursor = {'cursor': following}
        return len(seen)

    # -- steps -----------------------------------------------------------------

    def _pool(self, tasks, name):
        """A pool of this call's own: one request's lookups never queue behind another's."""
        return _CallPool(min(tasks, self._settings.spycloud_max_workers), name)

    def _cached_catalogs(self, lookup, ids):
        fingerprint = lookup.fingerprint
        cached = self._catalogs.get_many([(fingerprint, i) for i in ids], secret=lookup.api_key)
        found = {i: cached[(fingerprint, i)] for i in ids if (fingerprint, i) in cached}
        return found, [i for i in ids if i not in found]

    def _remember(self, lookup, catalogs):
        self._catalogs.set_many(
            {(lookup.fingerprint, i): c for i, c in catalogs.items()}, secret=lookup.api_key
        )

    def _fetch_catalogs(self, lookup, ids):
        """id → Catalog for the ids SpyCloud knows, in one call (``breach/catalog/1,2,3``).

        SpyCloud documents the comma list; should it refuse one (400), each id is asked alone.
        """
        try:
            page = self._transport.get(lookup, 'breach/catalog/' + ','.join(map(str, ids)))
        except BadRequest:
            if len(ids) == 1:
                return {}
            found = {}
            for catalog_id in ids:
                found.update(self._fetch_catalogs(lookup, [catalog_id]))
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


class _VerdictsAhead:
    """Observe's verdicts, asked before its records arrive (``SpyCloudClient.exposures``):
    what the cache held, and the lookups of the rest, which each observable waits for."""

    def __init__(self, accounts, known, pending, future):
        self._held = {id(o) for o in accounts}
        self._known = known
        self._position = {id(o): i for i, o in enumerate(pending)}
        self._future = future

    def holds(self, observable) -> bool:
        return id(observable) in self._held

    def evidence(self, lookup, observable, found):
        """The observable's evidence (None without one); what stopped its lookup goes in
        ``found`` as a warning, never failing the observable's own lookup."""
        if id(observable) in self._known:
            return self._known[id(observable)]
        assert self._future is not None, 'an account not in the cache has a lookup'
        wait([self._future], timeout=lookup.deadline.remaining() + 1.0)
        if not self._future.done():
            _cut_short_once(lookup, observable, found)
            return None
        judged = self._future.result()[self._position[id(observable)]]
        if isinstance(judged, RelayError):
            found.append(warnings.verdict_failed(observable, judged))
            return None
        for warning in judged.warnings:
            if warning.code == 'deadline exceeded':
                _cut_short_once(lookup, observable, found)
            else:
                found.append(warning)
        return judged.evidence


def _cut_short_once(lookup, observable, found):
    if not any(w.code == 'deadline exceeded' for w in found):  # said once is enough
        found.append(_verdict_cut_short(lookup, observable))


class _Pages:
    """The records of one observable as its pages arrive: de-duplicated, counted, capped."""

    def __init__(self, observable, limit):
        self.observable, self.limit = observable, limit
        self.records, self.count, self.hits, self.done = [], 0, 0, False
        self.cursor: dict[str, str] = {}
        self._seen, self._skipped, self._warnings = set(), 0, []

    def add(self, page):
        self.count += 1
        self.hits = max(self.hits, _count(page.get('hits')))
        results = page.get('results')
        for raw in results if isinstance(results, list) else ():
            try:
                record = BreachRecord.from_api(raw)
            except MalformedData:
                self._skipped += 1
                continue
            if record.document_id not in self._seen:
                self._seen.add(record.document_id)
                self.records.append(record)
        cursor = page.get('cursor')
        # The filters go along with the cursor: some SpyCloud clients rely on it.
        self.cursor = {'cursor': cursor} if isinstance(cursor, str) and cursor.strip() else {}
        self.done = len(self.records) >= self.limit or not self.cursor

    def stop(self, warning=None):
        if warning is not None:
            self._warnings.append(warning)
        self.done = True

    def result(self):
        if self._skipped:
            self._warnings.append(warnings.malformed_records(self.observable, self._skipped))
        self.records.sort(key=lambda record: record.published, reverse=True)
        return (self.records[: self.limit], max(self.hits, len(self.records)), list(self._warnings))


def _records_path(observable):
    return PAGE_ENDPOINTS[observable['type']] + quote(observable['value'], safe='@')


def _values(group):
    return ', '.join(o['value'] for o in group)


def _verdict_cut_short(lookup, observable):
    return warnings.cut_short(lookup.deadline, f'the verdict lookup of {observable["value"]}')


def _spread(lookup, group, result):
    """A group's result, one per member: its exposures, or what stopped the group."""
    if isinstance(result, list):
        return result
    if result.__class__ is RelayWarning:  # the group did not end within the deadline
        return [
            Exposure(
                o, [], 0, {}, [warnings.cut_short(lookup.deadline, f'the lookup of {o["value"]}')]
            )
            for o in group
        ]
    return [result] * len(group)


def _evidence_key(lookup, observable):
    rule = lookup.verdicts
    return (
        'evidence',
        lookup.fingerprint,
        observable['type'],
        observable['value'],
        rule.min_severity,
        rule.since.isoformat(),
    )


def _page_evidence(rule, observable, page):
    """The evidence on the first (and for a verdict, only) page of a filtered call."""
    pages = _Pages(observable, 1000)
    pages.add(page)
    records, hits, _ = pages.result()
    return _evidence(rule, records, hits)


def _evidence(rule, records, hits):
    """The evidence in ``records`` (those the rule qualifies), or None when none qualifies.
    ``hits`` is SpyCloud's count of qualifying records when the call was filtered by the rule."""
    qualifying = [r for r in records if rule.qualifies(r)]
    if not qualifying:
        return None
    return Evidence(
        hits=max(hits or 0, len(qualifying)),
        newest=max(qualifying, key=lambda r: r.published),
        worst_severity=max(r.severity or 0 for r in qualifying),
    )


def _covers(filters, rule):
    """Whether records fetched with ``filters`` include every record the rule qualifies."""
    severity, since = filters.get('severity'), filters.get('since')
    wanted = set(rule.filters['severity'].split(','))
    return (severity is None or wanted <= set(severity.split(','))) and (
        since is None or since <= rule.since.isoformat()
    )


def _bad_request(observable, filters, error, pages):
    """SpyCloud's 400: an expired cursor, a refused filter, or (otherwise) no data."""
    message = str(error)
    if pages.cursor and CURSOR_EXPIRED in message.lower():
        return warnings.cursor_expired(observable, pages.count)
    refused = [name for name in filters if f"'{name}'" in message.lower()]
    if refused:
        return warnings.filter_refused(observable, refused[0], message)
    return None


def _fetched(future, chunk, reasons):
    """The catalogs one batch brought; its failure becomes a reason per id (or is raised)."""
    error = future.exception()
    if isinstance(error, AuthorizationError):
        raise error
    if isinstance(error, DeadlineReached):
        return {}
    if isinstance(error, RelayError):
        reasons.update({i: warnings.catalog_failed(i, error) for i in chunk})
        return {}
    if error is not None:
        raise error
    fetched = future.result()
    reasons.update({i: warnings.catalog_missing(i) for i in chunk if i not in fetched})
    return fetched


def _settled(lookup, what, future):
    if not future.done() or isinstance(future.exception(), DeadlineReached):
        return warnings.cut_short(lookup.deadline, f'the lookup of {what}')
    error = future.exception()
    if isinstance(error, RelayError):
        return error
    if error is not None:
        log.error(
            'lookup failed unexpectedly (%s)',
            type(error).__name__,
            extra={'traceback': ''.join(format_tb(error.__traceback__))},
        )
        return InternalServerError(f'The lookup of {what} failed unexpectedly.')
    return future.result()


class _CallPool:
    """Runs one call's tasks: inline when there is one (no thread to start), else on threads
    of its own, left to finish on their own (each bounded by the deadline) once waited for."""

    def __init__(self, workers, name):
        self._executor = (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
            if workers > 1
            else None
        )

    def submit(self, function, *args):
        if self._executor is not None:
            return self._executor.submit(function, *args)
        future: Future = Future()
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
