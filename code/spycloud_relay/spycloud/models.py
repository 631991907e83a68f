"""SpyCloud's data as the relay understands it.

SpyCloud guarantees only ``document_id``, ``source_id`` and
``spycloud_publish_date`` on a record; everything else is optional and sparse.
These types check the few fields the relay relies on and keep the rest as
SpyCloud sent it, so the mapping can show it without guessing. What is asked about travels as
an ``Observable``, typed, from the request's schema (api/schemas.py) to the CTIM it is written in.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self, TypeVar

from spycloud_relay.config import parse_int
from spycloud_relay.errors import RelayWarning
from spycloud_relay.state import codec

if TYPE_CHECKING:
    from spycloud_relay.spycloud.compass import Device

# The severities SpyCloud documents: 2 e-mail only, 5 informational, 20 plaintext credential,
# 25 infostealer, 26 and 30 access data (session and cookie theft).
KNOWN_SEVERITIES = (2, 5, 20, 25, 26, 30)
SEVERITY_NAMES = {
    2: 'e-mail only',
    5: 'informational',
    20: 'plaintext credential',
    25: 'infostealer',
    26: 'access data',
    30: 'stolen session cookies',
}


def severities_from(minimum: int) -> str:
    """SpyCloud's ``severity`` parameter (an exact-match list) for a minimum."""
    return ','.join(str(s) for s in KNOWN_SEVERITIES if s >= minimum)


T = TypeVar('T')


class MalformedData(ValueError):
    """SpyCloud sent a record or catalog the relay cannot use."""


def page_items(page: Mapping[str, Any], parse: Callable[[object], T]) -> tuple[list[T], int]:
    """What a page's ``results`` hold, each read by ``parse`` (``BreachRecord.from_api``,
    ``Catalog.from_api``), and how many were malformed and left out."""
    results = page.get('results')
    items: list[T] = []
    skipped = 0
    for raw in results if isinstance(results, list) else ():
        try:
            items.append(parse(raw))
        except MalformedData:
            skipped += 1
    return items, skipped


def parse_time(value: object) -> datetime | None:
    """SpyCloud's ISO dates (``2020-01-09T00:00:00Z``, older ``2020-01-09 00:00:00``)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(('Z', 'z')):
        text = text[:-1] + '+00:00'
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


@dataclass(frozen=True)
class BreachRecord:
    """One exposed credential or persona, from one breach source."""

    document_id: str
    source_id: int | None
    published: datetime
    severity: int | None
    fields: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, raw: object) -> Self:
        if not isinstance(raw, Mapping):
            raise MalformedData('a breach record is not an object')
        document_id = raw.get('document_id')
        if not isinstance(document_id, str) or not document_id.strip():
            raise MalformedData('a breach record has no document_id')
        published = parse_time(raw.get('spycloud_publish_date'))
        if published is None:
            raise MalformedData('a breach record has no usable spycloud_publish_date')
        return cls(
            document_id=document_id,
            source_id=parse_int(raw.get('source_id')),
            published=published,
            severity=parse_int(raw.get('severity')),
            fields=raw,
        )

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


# What SpyCloud's catalog uuids are made of: a value with anything else gets no portal link.
PORTAL_ID = re.compile(r'[0-9A-Za-z][0-9A-Za-z-]{0,63}')


@dataclass(frozen=True)
class Catalog:
    """A breach source: the site, the leak, when SpyCloud published it."""

    id: int
    fields: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, raw: object) -> Self:
        if not isinstance(raw, Mapping):
            raise MalformedData('a catalog is not an object')
        catalog_id = parse_int(raw.get('id'))
        if catalog_id is None:
            raise MalformedData('a catalog has no id')
        return cls(id=catalog_id, fields=raw)

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    def text(self, name: str) -> str | None:
        """A string field, or None when absent or of another type."""
        value = self.fields.get(name)
        return value.strip() if isinstance(value, str) and value.strip() else None

    @property
    def published(self) -> datetime | None:
        return parse_time(self.fields.get('spycloud_publish_date'))

    @property
    def portal_id(self) -> str | None:
        """The uuid that names the source on SpyCloud's portal, when it is one: letters,
        digits and dashes only, so a link built from it (SPYCLOUD_UI_URL) never leaves the
        portal, whatever a breach's feeder put there."""
        uuid = self.text('uuid')
        return uuid if uuid is not None and PORTAL_ID.fullmatch(uuid) else None

    @property
    def is_combo_list(self) -> bool:
        flag = self.fields.get('combo_list_flag')
        if isinstance(flag, str):
            return flag.strip().upper() in ('YES', 'TRUE', 'Y', '1')
        return flag is True


@dataclass(frozen=True)
class Observable:
    """What XDR asks about, as CTIM names it: a type (``email``, ``domain``, ``ip``, ...) and
    its value. Frozen, so two of the same are equal and hash alike."""

    type: str
    value: str

    @classmethod
    def of(cls, mapping: Mapping[str, str]) -> Self:
        """From CTIM's JSON object (its fields checked as strings by api/schemas.py): the type
        lower-cased and both trimmed, so `` Email `` and ``email`` are one observable."""
        return cls(type=mapping['type'].strip().lower(), value=mapping['value'].strip())

    def as_ctim(self) -> dict[str, str]:
        """The ``{'type', 'value'}`` object CTIM documents hold (a new one each time)."""
        return {'type': self.type, 'value': self.value}


@dataclass(frozen=True)
class Evidence:
    """Why an account is suspicious: how many qualifying records, the newest, the worst."""

    hits: int
    newest: BreachRecord
    worst_severity: int


@dataclass
class Exposure:
    """What SpyCloud knows about one observable: its newest records and their sources, and
    the evidence for a verdict when the request asked for one and there is some."""

    observable: Observable
    records: list[BreachRecord]
    hits: int
    # Keyed by catalog id (int). Any, not int, while ctim/mapping.py looks a record's
    # source_id (int | None) up in it as it is: dict[int, Catalog] once it checks the None.
    catalogs: dict[Any, Catalog]
    warnings: list[RelayWarning] = field(default_factory=list)
    evidence: Evidence | None = None
    # The infected machines its infostealer records name, by machine id (spycloud/compass.py).
    devices: dict[str, 'Device'] = field(default_factory=dict)

    @classmethod
    def empty(cls, observable: Observable, warning: RelayWarning) -> Self:
        """No record: the observable's lookup did not happen or did not end, and why."""
        return cls(observable=observable, records=[], hits=0, catalogs={}, warnings=[warning])

    @classmethod
    def judged(cls, observable: Observable, evidence: Evidence | None) -> Self:
        """Only the evidence for a verdict (None when there is none), as a verdict lookup has."""
        return cls(observable=observable, records=[], hits=0, catalogs={}, evidence=evidence)


# How the caches store these (state/codec.py): records and catalogs as the raw object SpyCloud
# sent, rebuilt by from_api; evidence by its parts.
codec.register(
    BreachRecord, 'BreachRecord', lambda record: dict(record.fields), BreachRecord.from_api
)
codec.register(Catalog, 'Catalog', lambda catalog: dict(catalog.fields), Catalog.from_api)
codec.register(
    Evidence,
    'Evidence',
    lambda evidence: {
        'hits': evidence.hits,
        'newest': dict(evidence.newest.fields),
        'worst_severity': evidence.worst_severity,
    },
    lambda parts: Evidence(
        hits=parts['hits'],
        newest=BreachRecord.from_api(parts['newest']),
        worst_severity=parts['worst_severity'],
    ),
)
