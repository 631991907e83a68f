"""The observe answer: CTIM documents grouped by plural type, in the order found.

XDR's bundle schema wants unique docs per list, so a document seen twice (the
same breach source behind two observables) is kept once.
"""

from collections.abc import Iterable
from typing import Any


class Bundle:
    def __init__(self) -> None:
        self._docs: dict[str, dict[str | tuple[str, str], dict[str, Any]]] = {}

    def add(self, *docs: dict[str, Any]) -> None:
        for doc in docs:
            plural = doc['type'] + 's'
            self._docs.setdefault(plural, {}).setdefault(_identity(doc), doc)

    def extend(self, docs: Iterable[dict[str, Any]]) -> None:
        self.add(*docs)

    def data(self) -> dict[str, dict[str, Any]]:
        """``{"sightings": {"count", "docs"}, ...}``; empty lists are left out."""
        return {
            plural: {'count': len(docs), 'docs': list(docs.values())}
            for plural, docs in self._docs.items()
            if docs
        }


def _identity(doc: dict[str, Any]) -> str | tuple[str, str]:
    """A document's id; a verdict has none, and is one per observable."""
    if 'id' in doc:
        doc_id: str = doc['id']
        return doc_id
    return (doc['observable']['type'], doc['observable']['value'])
