"""Observe's lookups: an observable's exposure is its records, their sources and its verdict.

A cold lookup costs one call per page of records, then the distinct uncached breach sources,
batched by ten per call and fetched at once: two round trips. A warm one costs only the pages.
The verdict's call, when the records cannot decide it, goes beside the catalogs' (or, when
observe's filters are narrower than the rule, ahead of the records for all accounts at once).
What the deadline cut short is answered with a warning naming what is missing. The infected
machines of infostealer records go to Compass beside the catalogs too (spycloud/compass.py),
when the pivot is on (COMPASS_PIVOT).
"""

from concurrent.futures import Future
from functools import partial
from typing import cast

from spycloud_relay.errors import RelayError, RelayWarning
from spycloud_relay.spycloud import warnings
from spycloud_relay.spycloud.catalogs import Catalogs, Sources
from spycloud_relay.spycloud.compass import Compass, Device, Devices, wanted_machine
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.spycloud.models import BreachRecord, Catalog, Evidence, Exposure, Observable
from spycloud_relay.spycloud.pool import Pools, waited
from spycloud_relay.spycloud.records import BreachRecords, Found, asked
from spycloud_relay.spycloud.verdicts import VERDICT_TYPES, Verdicts, VerdictsAhead, covers
from spycloud_relay.state import MISSING


class Exposures:
    """Observe's assembly of records, catalogs and verdicts, over the client's parts."""

    def __init__(
        self,
        records: BreachRecords,
        catalogs: Catalogs,
        verdicts: Verdicts,
        pools: Pools,
        compass: Compass | None = None,
    ) -> None:
        self._records = records
        self._catalogs = catalogs
        self._verdicts = verdicts
        self._pools = pools
        self._compass = compass

    def all(self, lookup: Lookup, observables: list[Observable]) -> list[Exposure | RelayError]:
        """Exposure (or the RelayError that stopped it) per observable, in order, concurrently.

        When observe's filters are narrower than the verdict rule, no account's own records can
        decide its verdict, so the verdicts of all its accounts are asked at once beside the
        records, as deliberate asks them (one cache read, ten e-mails per call)."""
        rule = lookup.verdicts
        accounts = [o for o in observables if o.type in VERDICT_TYPES and o.value.strip('.')]
        if rule is None or not accounts or covers(lookup.filters, rule):
            return self._pools.per_observable(lookup, observables, self.one)
        known, pending = self._verdicts.cached(lookup, accounts)
        with self._pools.open(2 if pending else 1, 'ahead') as pool:
            future = pool.submit(self._verdicts.judged_all, lookup, pending) if pending else None
            ahead = VerdictsAhead(accounts, known, pending, future)
            return self._pools.per_observable(lookup, observables, partial(self.one, ahead=ahead))

    def one(
        self, lookup: Lookup, observable: Observable, ahead: VerdictsAhead | None = None
    ) -> Exposure:
        """The newest ``lookup.limit`` records of an observable, with their breach sources."""
        fetched = asked(observable, lambda: self._records.fetch(lookup, observable))
        if isinstance(fetched, Exposure):
            return fetched
        records, hits, found = fetched
        ids = list(dict.fromkeys(r.source_id for r in records if r.source_id is not None))
        machines = self._machines(records)
        with self._pools.open(2 if machines else 1, 'devices') as pool:
            compass_call = pool.submit(self._devices, lookup, machines)
            catalogs, reasons, evidence = self._sources_and_verdict(
                lookup, observable, fetched, ids, ahead
            )
        devices = self._devices_of(lookup, compass_call, found)
        found.extend(reasons[i] for i in ids if i in reasons)
        unanswered = [i for i in ids if i not in catalogs and i not in reasons]
        if unanswered:
            found.append(
                warnings.cut_short(
                    lookup.deadline,
                    f'breach sources {_ids(unanswered)} of {observable.value}: '
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
            devices=devices,
        )

    def _machines(self, records: list[BreachRecord]) -> list[str]:
        """The infected machines Compass is asked about: none when the pivot is off."""
        if self._compass is None:
            return []
        named = (wanted_machine(r.get('infected_machine_id')) for r in records)
        return list(dict.fromkeys(m for m in named if m is not None))

    @staticmethod
    def _devices_of(
        lookup: Lookup, asked: 'Future[Devices]', found: list[RelayWarning]
    ) -> dict[str, Device]:
        """The devices Compass told by the deadline (asked beside the catalogs), its warnings
        into ``found``."""
        waited([asked], lookup, margin=1.0)
        devices, said = asked.result() if asked.done() else ({}, [])
        found.extend(said)
        return devices

    def _devices(self, lookup: Lookup, machines: list[str]) -> Devices:
        if self._compass is None or not machines:
            return {}, []
        return self._compass.devices(lookup, machines)

    def _sources_and_verdict(
        self,
        lookup: Lookup,
        observable: Observable,
        fetched: Found,
        ids: list[int],
        ahead: VerdictsAhead | None,
    ) -> tuple[dict[int, Catalog], dict[int, RelayWarning], Evidence | None]:
        """The catalogs and the verdict's evidence. When the verdict takes a call (its records
        cannot decide it and the cache does not hold it), that call and the catalogs' go at
        once, neither waiting for the other; else no thread is started for it."""
        if ahead is not None and ahead.holds(observable):
            catalogs, reasons = self._catalogs.get(lookup, ids)
            evidence = ahead.evidence(lookup, observable, fetched[2])
        else:
            sources, evidence = self._beside(lookup, observable, fetched, ids)
            catalogs, reasons = sources
        source = evidence.newest.source_id if evidence is not None else None
        if source is not None and source not in catalogs:  # for the judgement's link
            catalogs.update(self._catalogs.get(lookup, [source])[0])
        return catalogs, reasons, evidence

    def _beside(
        self, lookup: Lookup, observable: Observable, fetched: Found, ids: list[int]
    ) -> tuple[Sources, Evidence | None]:
        """The catalogs, and the verdict's call beside them on a pool of two when it takes one."""
        held = self._verdicts.at_hand(lookup, observable, fetched)
        found = fetched[2]
        if held is not MISSING:
            return self._catalogs.get(lookup, ids), cast('Evidence | None', held)
        with self._pools.open(2, 'beside') as pool:
            judged = pool.submit(self._verdicts.beside, lookup, observable, found)
            sources = self._catalogs.get(lookup, ids)
            waited([judged], lookup, margin=1.0)
        return sources, judged.result() if judged.done() else None


def _ids(ids: list[int]) -> str:
    shown = ', '.join(str(i) for i in ids[:10])
    return shown + (f' and {len(ids) - 10} more' if len(ids) > 10 else '')
