"""The evidence for a verdict: an account's qualifying records, from the cache or SpyCloud.

A verdict is about an account (an e-mail or a username). Its evidence is the records the
request's VerdictRule qualifies, asked with the rule's own filters, so the first page decides
(one qualifying record is enough). The cache is asked once for every account of a request;
what it does not hold costs one call per username and one per ten e-mails (the batching of
spycloud/batching.py), every call at once on the request's own pool, within its deadline.
Observe asks the same evidence beside its records: ``VerdictsAhead`` holds what it waits for.
"""

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any
from urllib.parse import quote

from spycloud_relay.deadline import DeadlineReached
from spycloud_relay.errors import RelayError, RelayWarning
from spycloud_relay.spycloud import warnings
from spycloud_relay.spycloud.batching import EmailBatching, account
from spycloud_relay.spycloud.failures import BadRequest, Refused
from spycloud_relay.spycloud.lookup import Lookup, VerdictRule
from spycloud_relay.spycloud.models import BreachRecord, Evidence, Exposure, Observable
from spycloud_relay.spycloud.pool import Pools, waited
from spycloud_relay.spycloud.records import PAGE_ENDPOINTS, Found, Pages, asked, records_path
from spycloud_relay.spycloud.transport import Transport
from spycloud_relay.state import MISSING, Store

# Verdicts are about accounts: an exposed e-mail or username, not a whole domain or an IP.
VERDICT_TYPES = ('email', 'user')

# Per observable: its Exposure (only evidence and warnings), or the RelayError that stopped it.
Judged = list[Exposure | RelayError]


class Verdicts:
    """The verdict lookups of the client, over its transport, records cache and pools."""

    def __init__(
        self, transport: Transport, cache: Store, batching: EmailBatching, pools: Pools
    ) -> None:
        self._transport = transport
        self._cache = cache
        self._batching = batching
        self._pools = pools

    def of(self, lookup: Lookup, observables: list[Observable]) -> Judged:
        """Per observable, an Exposure holding only the evidence for a verdict (None when
        there is none) and its warnings, or the RelayError that stopped it.

        The cache is asked once for all of them (one MGET on Redis); only what it does not
        hold is looked up, concurrently, so a warm request starts no thread at all."""
        known, pending = self.cached(lookup, observables)
        fetched = iter(self.judged_all(lookup, pending))
        return [
            Exposure.judged(o, known[id(o)]) if id(o) in known else next(fetched)
            for o in observables
        ]

    def cached(
        self, lookup: Lookup, observables: list[Observable]
    ) -> tuple[dict[int, Evidence | None], list[Observable]]:
        """({id(observable): evidence} the cache holds, read at once; the others)."""
        keys = {id(o): evidence_key(lookup, o) for o in observables if o.value.strip('.')}
        cached = self._cache.get_many(list(keys.values()), secret=lookup.api_key)
        lookup.stats.add(cache_hits=len(cached), cache_misses=len(keys) - len(cached))
        known = {i: cached[k] for i, k in keys.items() if k in cached}
        return known, [o for o in observables if id(o) not in known]

    def judged_all(self, lookup: Lookup, observables: list[Observable]) -> Judged:
        """The verdict lookups of what the cache did not hold, e-mails batched, all at once."""
        groups = self._batching.groups(observables)
        results = self._pools.each(lookup, groups, self._judged_group, describe=_values)
        settled: dict[int, Exposure | RelayError] = {}
        for group, result in zip(groups, results, strict=True):
            for observable, exposure in zip(group, _spread(lookup, group, result), strict=True):
                settled[id(observable)] = exposure
        return [settled[id(o)] for o in observables]

    def _judged_group(self, lookup: Lookup, group: list[Observable]) -> Judged:
        """One call for a group of e-mails (see spycloud/batching.py); each one alone when
        that call cannot settle them all."""
        if len(group) == 1:
            return [self.judged(lookup, group[0])]
        rule = lookup.verdicts
        assert rule is not None, 'a verdict lookup needs the rule'
        values = dict.fromkeys(account(o.value) for o in group)
        path = PAGE_ENDPOINTS['email'] + ','.join(quote(v, safe='@') for v in values)
        page: dict[str, Any] | None
        try:
            page = self._transport.get(lookup, path, rule.filters)
        except BadRequest:
            self._batching.refused()
            page = None
        except Refused:
            page = None  # a 403 for one address the key may not search: each is asked alone
        except DeadlineReached:
            return [Exposure.empty(o, verdict_cut_short(lookup, o)) for o in group]
        found = self._batching.read(page, group) if page is not None else None
        if found is None:
            alone = self._pools.per_observable(lookup, group, self.judged)
            exposed = any(isinstance(e, Exposure) and e.evidence is not None for e in alone)
            self._batching.asked_alone(page, exposed)
            return alone
        return self._kept(lookup, rule, group, found)

    def _kept(
        self,
        lookup: Lookup,
        rule: VerdictRule,
        group: list[Observable],
        found: dict[str, list[Any]],
    ) -> Judged:
        """The evidence of each member in a list's answer, kept in the cache."""
        evidence = {
            id(o): page_evidence(rule, o, {'results': found[account(o.value)]}) for o in group
        }
        self._cache.set_many(
            {evidence_key(lookup, o): evidence[id(o)] for o in group}, secret=lookup.api_key
        )
        return [Exposure.judged(o, evidence[id(o)]) for o in group]

    def judged(self, lookup: Lookup, observable: Observable) -> Exposure:
        """The verdict lookup of one observable the cache does not hold: one call."""
        try:
            evidence = asked(observable, lambda: self.fetched(lookup, observable))
        except DeadlineReached:
            return Exposure.empty(observable, verdict_cut_short(lookup, observable))
        if isinstance(evidence, Exposure):
            return evidence
        return Exposure.judged(observable, evidence)

    def fetched(self, lookup: Lookup, observable: Observable) -> Evidence | None:
        """The qualifying records of ``lookup.verdicts`` for an observable, from the first page
        of a filtered call (one qualifying record decides), and kept in the cache."""
        rule = lookup.verdicts
        assert rule is not None, 'a verdict lookup needs the rule'
        try:
            page = self._transport.get(lookup, records_path(observable), rule.filters)
        except BadRequest:
            return None  # SpyCloud's 400: no data for this selector (not cached)
        evidence = page_evidence(rule, observable, page)
        self._cache.set(evidence_key(lookup, observable), evidence, secret=lookup.api_key)
        return evidence

    def at_hand(self, lookup: Lookup, observable: Observable, fetched: Found) -> object:
        """Observe's verdict when no call is needed: None without a rule (or for a domain or an
        IP), decided from its own records (``fetched``) when they hold every candidate, or
        cached; MISSING when it takes the verdict call."""
        rule = lookup.verdicts
        if rule is None or observable.type not in VERDICT_TYPES:
            return None
        records, hits, found = fetched
        key = evidence_key(lookup, observable)
        if not found and hits == len(records) and covers(lookup.filters, rule):
            evidence = _evidence(rule, records, hits=None)
            self._cache.set(key, evidence, secret=lookup.api_key)
            return evidence
        cached = self._cache.get(key, secret=lookup.api_key)
        lookup.stats.add(**{'cache_hits' if cached is not MISSING else 'cache_misses': 1})
        return cached

    def beside(
        self, lookup: Lookup, observable: Observable, found: list[RelayWarning]
    ) -> Evidence | None:
        """Observe's verdict call; its failure is a warning, never the lookup's."""
        try:
            return self.fetched(lookup, observable)
        except DeadlineReached:
            cut_short_once(lookup, observable, found)
        except RelayError as error:
            found.append(warnings.verdict_failed(observable, error))
        return None


class VerdictsAhead:
    """Observe's verdicts, asked before its records arrive (``SpyCloudClient.exposures``):
    what the cache held, and the lookups of the rest, which each observable waits for."""

    def __init__(
        self,
        accounts: list[Observable],
        known: dict[int, Evidence | None],
        pending: list[Observable],
        future: Future[Judged] | None,
    ) -> None:
        self._held = {id(o) for o in accounts}
        self._known = known
        self._position = {id(o): i for i, o in enumerate(pending)}
        self._future = future

    def holds(self, observable: Observable) -> bool:
        return id(observable) in self._held

    def evidence(
        self, lookup: Lookup, observable: Observable, found: list[RelayWarning]
    ) -> Evidence | None:
        """The observable's evidence (None without one); what stopped its lookup goes in
        ``found`` as a warning, never failing the observable's own lookup."""
        if id(observable) in self._known:
            return self._known[id(observable)]
        assert self._future is not None, 'an account not in the cache has a lookup'
        waited([self._future], lookup, margin=1.0)
        if not self._future.done():
            cut_short_once(lookup, observable, found)
            return None
        judged = self._future.result()[self._position[id(observable)]]
        if isinstance(judged, RelayError):
            found.append(warnings.verdict_failed(observable, judged))
            return None
        for warning in judged.warnings:
            if warning.code == 'deadline exceeded':
                cut_short_once(lookup, observable, found)
            else:
                found.append(warning)
        return judged.evidence


def cut_short_once(lookup: Lookup, observable: Observable, found: list[RelayWarning]) -> None:
    if not any(w.code == 'deadline exceeded' for w in found):  # said once is enough
        found.append(verdict_cut_short(lookup, observable))


def verdict_cut_short(lookup: Lookup, observable: Observable) -> RelayWarning:
    return warnings.cut_short(lookup.deadline, f'the verdict lookup of {observable.value}')


def covers(filters: Mapping[str, str], rule: VerdictRule) -> bool:
    """Whether records fetched with ``filters`` include every record the rule qualifies."""
    severity, since = filters.get('severity'), filters.get('since')
    wanted = set(rule.filters['severity'].split(','))
    return (severity is None or wanted <= set(severity.split(','))) and (
        since is None or since <= rule.since.isoformat()
    )


def evidence_key(lookup: Lookup, observable: Observable) -> tuple[object, ...]:
    """The cache key of an account's evidence: whose key, which account, which rule."""
    rule = lookup.verdicts
    assert rule is not None, 'evidence is for a verdict rule'
    return (
        'evidence',
        lookup.fingerprint,
        observable.type,
        observable.value,
        rule.min_severity,
        rule.since.isoformat(),
    )


def page_evidence(
    rule: VerdictRule, observable: Observable, page: Mapping[str, Any]
) -> Evidence | None:
    """The evidence on the first (and for a verdict, only) page of a filtered call."""
    pages = Pages(observable, 1000)
    pages.add(page)
    records, hits, _ = pages.result()
    return _evidence(rule, records, hits)


def _evidence(rule: VerdictRule, records: list[BreachRecord], hits: int | None) -> Evidence | None:
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


def _values(group: Sequence[Observable]) -> str:
    return ', '.join(o.value for o in group)


def _spread(lookup: Lookup, group: list[Observable], result: Judged | RelayError) -> Judged:
    """A group's result, one per member: its exposures, or what stopped the group."""
    if isinstance(result, list):
        return result
    if result.__class__ is RelayWarning:  # the group did not end within the deadline
        return [
            Exposure.empty(o, warnings.cut_short(lookup.deadline, f'the lookup of {o.value}'))
            for o in group
        ]
    return [result] * len(group)
