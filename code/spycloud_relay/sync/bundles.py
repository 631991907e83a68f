"""Incidents' entities → CTIM bundles of at most SYNC_BUNDLE_MAX entities each.

A bundle refers by transient ids only to what it holds, so every relationship travels with
both its ends: an incident's sightings stay in its bundle, and an incident too big for one
bundle has its sightings spread over several that each repeat the incident (and the indicators
those sightings refer to). CTIA answers ``exists`` for the repeated ones. Pure.
"""

from collections.abc import Sequence
from typing import Any

from spycloud_relay.sync.incidents import Entities

PLURALS = ('incidents', 'sightings', 'indicators', 'relationships')
ENDS = ('source_ref', 'target_ref')
# The smallest piece: an incident, one sighting, its two relationships and its indicator.
MIN_BUNDLE = 5

Doc = dict[str, Any]


def pieces(entities: Entities) -> list[list[Doc]]:
    """The incident with each sighting, that sighting's relationships and the indicators they
    name: the units a bundle is filled with. A relationship of no sighting goes with the first."""
    indicators = {doc['id']: doc for doc in entities.indicators}

    def piece(links: list[Doc], *docs: Doc) -> list[Doc]:
        named = [indicators[r[end]] for r in links for end in ENDS if r[end] in indicators]
        return [*entities.incidents, *docs, *named, *links]

    made: list[list[Doc]] = []
    placed: set[str] = set()
    for seen in entities.sightings:
        links = [r for r in entities.relationships if seen['id'] in (r[e] for e in ENDS)]
        placed.update(r['id'] for r in links)
        made.append(piece(links, seen))
    orphans = [r for r in entities.relationships if r['id'] not in placed]
    if orphans or not made:
        made.insert(0, piece(orphans))
    return made


class Filling:
    """The bundles made so far and the one being filled (each entity once per bundle)."""

    def __init__(self, source: str, max_entities: int) -> None:
        self.source, self.max = source, max_entities
        self.done: list[Doc] = []
        self.docs: dict[str, Doc] = {}

    def new(self, docs: Sequence[Doc]) -> list[Doc]:
        fresh: dict[str, Doc] = {}
        for doc in docs:
            if doc['id'] not in self.docs:
                fresh.setdefault(doc['id'], doc)
        return list(fresh.values())

    def fits(self, docs: Sequence[Doc]) -> bool:
        return len(self.docs) + len(self.new(docs)) <= self.max

    def add(self, docs: Sequence[Doc]) -> None:
        if not self.fits(docs):
            self.close()
        if not self.fits(docs):
            raise ValueError(f'the bundle size must be at least {len(self.new(docs))} entities')
        for doc in self.new(docs):
            self.docs[doc['id']] = doc

    def close(self) -> None:
        if not self.docs:
            return
        bundle: Doc = {'type': 'bundle', 'source': self.source}
        for plural in PLURALS:
            bundle[plural] = [doc for doc in self.docs.values() if doc['type'] + 's' == plural]
        self.done.append(bundle)
        self.docs = {}


def bundles(entities: Sequence[Entities], source: str, max_entities: int) -> list[Doc]:
    """Bundles of at most ``max_entities`` entities, incidents in the order given: an incident
    that fits whole in a bundle is never split, and starts a new bundle when it does not fit
    in the current one."""
    filling = Filling(source, max_entities)
    for one in entities:
        parts = pieces(one)
        whole = [doc for part in parts for doc in part]
        if not filling.fits(whole) and len({doc['id'] for doc in whole}) <= max_entities:
            filling.close()
        for part in parts:
            filling.add(part)
    filling.close()
    return filling.done
