"""Watchlist records → the groups that become incidents: grouping, not a flood.

Analysts drown when every record is an incident. One incident per exposed account and breach
source; one per infected machine for infostealer records (severity 25), which lists every
application it lost; session and cookie theft (26, 30) is an incident of its own. Pure.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from spycloud_relay.spycloud import batching
from spycloud_relay.spycloud.models import BreachRecord, parse_time

SESSION_SEVERITIES = frozenset({26, 30})
INFOSTEALER_SEVERITY = 25


@dataclass(frozen=True)
class Group:
    """Records that make one incident: ``key`` names it (and so its external id), ``kind`` is
    'account', 'machine' or 'session', ``records`` newest first."""

    key: tuple[str, ...]
    kind: str
    records: tuple[BreachRecord, ...]


def text(record: BreachRecord, name: str) -> str | None:
    """A string field, trimmed, or None when absent, empty or of another type."""
    value = record.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def account(record: BreachRecord) -> str | None:
    """Who is exposed: the e-mail (as SpyCloud files it), else the username, else the first IP."""
    email = text(record, 'email')
    if email:
        return batching.account(email)
    username = text(record, 'username')
    if username:
        return username
    ips = record.get('ip_addresses')
    first = ips[0] if isinstance(ips, list) and ips else None
    return first.strip() if isinstance(first, str) and first.strip() else None


def modified(record: BreachRecord) -> datetime:
    """When SpyCloud last changed the record: its modification date, else its publish date."""
    return parse_time(record.get('record_modification_date')) or record.published


def newest_first(record: BreachRecord) -> tuple[datetime, datetime, str]:
    """The sort key of "newest": published, then modified, then the id (a total order)."""
    return (record.published, modified(record), record.document_id)


def key_of(record: BreachRecord) -> tuple[str, tuple[str, ...]]:
    """(kind, key) of the record's group."""
    machine = text(record, 'infected_machine_id')
    who = account(record) or f'record {record.document_id}'
    if record.severity in SESSION_SEVERITIES:
        return 'session', ('session', machine or who)
    if record.severity == INFOSTEALER_SEVERITY and machine:
        return 'machine', ('machine', machine)
    source = '' if record.source_id is None else str(record.source_id)
    return 'account', ('account', who, source)


def group(records: Iterable[BreachRecord]) -> list[Group]:
    """The records' groups, the one with the newest record first, each group's records newest
    first: the same records in any order give the same groups in the same order."""
    found: dict[tuple[str, ...], tuple[str, list[BreachRecord]]] = {}
    for record in records:
        kind, key = key_of(record)
        found.setdefault(key, (kind, []))[1].append(record)
    groups = [
        Group(key=key, kind=kind, records=tuple(sorted(members, key=newest_first, reverse=True)))
        for key, (kind, members) in found.items()
    ]
    groups.sort(key=lambda g: (newest_first(g.records[0]), g.key), reverse=True)
    return groups
