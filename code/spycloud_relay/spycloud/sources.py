"""Refer's lookups: which breach sources exposed an observable, at the least cost.

A refer builds a pivot menu, not an investigation, so it spends as little as it can: the
records come from the records cache (an observe of the same value with the same module settings
fills it) or, cold, from SpyCloud's first page alone (one call, spycloud/records.py); their
sources from the catalog cache, else fetched by ten ids per call at once
(spycloud/catalogs.py). What it finds is an Exposure, as observe's lookup finds.
"""

from spycloud_relay.errors import RelayError
from spycloud_relay.spycloud.catalogs import Catalogs
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.spycloud.models import Exposure, Observable
from spycloud_relay.spycloud.pool import Pools
from spycloud_relay.spycloud.records import BreachRecords, asked


class ExposingSources:
    """Refer's lookups over the client's records, catalogs and pools."""

    def __init__(self, records: BreachRecords, catalogs: Catalogs, pools: Pools) -> None:
        self._records = records
        self._catalogs = catalogs
        self._pools = pools

    def all(self, lookup: Lookup, observables: list[Observable]) -> list[Exposure | RelayError]:
        """Exposure (or the RelayError that stopped it) per observable, in order, concurrently."""
        return self._pools.per_observable(lookup, observables, self.one)

    def one(self, lookup: Lookup, observable: Observable) -> Exposure:
        """The records of an observable (cached, else the first page) and their sources."""
        first = asked(observable, lambda: self._records.first(lookup, observable))
        if isinstance(first, Exposure):
            return first
        records, hits, found = first
        ids = list(dict.fromkeys(r.source_id for r in records if r.source_id is not None))
        catalogs, reasons = self._catalogs.get(lookup, ids)
        found.extend(reasons[i] for i in ids if i in reasons)
        return Exposure(
            observable=observable, records=records, hits=hits, catalogs=catalogs, warnings=found
        )
