"""The observe answer: CTIM documents grouped by plural type, in the order found.

XDR's bundle schema wants unique docs per list, so a document seen twice (the
same breach source behind two observables) is kept once.
"""

from collections.abc import Iterable


class Bundle:
    def __init__(self) -> None:
        self._docs: dict[str, dict] = {}

    def add(self, *docs: dict) -> None:
        for doc in docs:
            plural = doc['type'] + 's'
            self._docs.setdefault(plural, {}).setdefault(_identity(doc), doc)

    def extend(self, docs: Iterable[dict]) -> None:
        self.add(*docs)

    def data(self) -> dict:
        """``{"sightings": {"count", "docs"}, ...}``; empty lists are left out."""
        return {
            plural: {'count': len(docs), 'docs': list(docs.values())}
            for plural, docs in self._docs.items()
            if docs
        }


def _identity(doc):
    """A document's id; a verdict has none, and is one per observable."""
    if 'id' in doc:
        return doc['id']
    return (doc['observable']['type'], doc['observable']['value'])
