"""The breach sources (catalogs) of a lookup's records: the catalog cache, then SpyCloud.

A source rarely changes and many records share one, so the cache is asked first, once for
all of them (CATALOG_CACHE_TTL_S); the rest are fetched by ten ids per call (SpyCloud takes
a comma list: ``breach/catalog/1,2,3``; SPYCLOUD_CATALOG_BATCH), every batch at once on the
call's own pool, within the lookup's deadline.
"""

from collections.abc import Mapping
from concurrent.futures import Future
from typing import Protocol

from spycloud_relay.deadline import DeadlineReached
from spycloud_relay.errors import AuthorizationError, RelayError, RelayWarning
from spycloud_relay.metrics import cache_lookup as _untyped_cache_lookup
from spycloud_relay.spycloud import warnings
from spycloud_relay.spycloud.failures import BadRequest
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.spycloud.models import Catalog, page_items
from spycloud_relay.spycloud.pool import Pools, waited
from spycloud_relay.spycloud.transport import Transport
from spycloud_relay.state import Store

# (found, reasons): id → Catalog, and id → why SpyCloud answered it without one.
Sources = tuple[dict[int, Catalog], dict[int, RelayWarning]]


class _CacheLookup(Protocol):
    def __call__(self, cache: str, hits: int = 0, misses: int = 0) -> None: ...


# metrics.py is not annotated yet: its function's signature, for this module's strict check.
cache_lookup: _CacheLookup = _untyped_cache_lookup


class Catalogs:
    """The catalog fetches of the client, over its transport, catalog cache and pools."""

    def __init__(self, transport: Transport, cache: Store, batch: int, pools: Pools) -> None:
        self._transport = transport
        self._cache = cache
        self._batch = batch
        self._pools = pools

    def get(self, lookup: Lookup, ids: list[int]) -> Sources:
        """(found, reasons): cache first, then the rest fetched at once within the deadline.

        ``found`` maps id → Catalog; ``reasons`` maps the ids SpyCloud answered without a
        catalog to a warning. Ids in neither were cut short by the deadline.
        """
        found, todo = self._cached(lookup, ids)
        cache_lookup('catalog', hits=len(found), misses=len(todo))
        lookup.stats.add(cache_hits=len(found), cache_misses=len(todo))
        reasons: dict[int, RelayWarning] = {}
        if not todo:
            return found, reasons
        chunks = [todo[i : i + self._batch] for i in range(0, len(todo), self._batch)]
        with self._pools.open(len(chunks), 'catalog') as pool:
            futures = {pool.submit(self._fetch, lookup, chunk): chunk for chunk in chunks}
            # Each fetch gives up at the deadline itself; the margin only covers its wrap-up.
            done = waited(futures, lookup, margin=0.5)
        for future in done:
            fetched = _fetched(future, futures[future], reasons)
            self._remember(lookup, fetched)
            found.update(fetched)
        return found, reasons

    def _cached(self, lookup: Lookup, ids: list[int]) -> tuple[dict[int, Catalog], list[int]]:
        fingerprint = lookup.fingerprint
        cached = self._cache.get_many([(fingerprint, i) for i in ids], secret=lookup.api_key)
        found = {i: cached[(fingerprint, i)] for i in ids if (fingerprint, i) in cached}
        return found, [i for i in ids if i not in found]

    def _remember(self, lookup: Lookup, catalogs: Mapping[int, Catalog]) -> None:
        self._cache.set_many(
            {(lookup.fingerprint, i): c for i, c in catalogs.items()}, secret=lookup.api_key
        )

    def _fetch(self, lookup: Lookup, ids: list[int]) -> dict[int, Catalog]:
        """id → Catalog for the ids SpyCloud knows, in one call (``breach/catalog/1,2,3``).

        SpyCloud documents the comma list; should it refuse one (400), each id is asked alone.
        """
        try:
            page = self._transport.get(lookup, 'breach/catalog/' + ','.join(map(str, ids)))
        except BadRequest:
            if len(ids) == 1:
                return {}
            found: dict[int, Catalog] = {}
            for catalog_id in ids:
                found.update(self._fetch(lookup, [catalog_id]))
            return found
        return _wanted(page, set(ids))


def _wanted(page: Mapping[str, object], wanted: set[int]) -> dict[int, Catalog]:
    """The catalogs of a page that were asked for, the first of each id; the malformed left out."""
    found: dict[int, Catalog] = {}
    for catalog in page_items(page, Catalog.from_api)[0]:
        if catalog.id in wanted:
            found.setdefault(catalog.id, catalog)
    return found


def _fetched(
    future: Future[dict[int, Catalog]], chunk: list[int], reasons: dict[int, RelayWarning]
) -> dict[int, Catalog]:
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
