"""The exposure dashboard: tile definitions, and each tile's data from one Aggregate.

Shapes are those Cisco's relays send for XDR's tile types (the XDR module surface spec, §4,
kept outside this repository). Pure: the aggregate, the breach sources' catalogs and the times
are given. No tile ever shows a password, a salt, a cookie or a card value: only counts,
accounts, dates and sources.
Every string SpyCloud sent goes into markdown through ``ctim.markdown.text``.
"""

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any

from spycloud_relay.ctim.mapping import breached_domain, ctim_time
from spycloud_relay.ctim.markdown import portal_link, text
from spycloud_relay.spycloud.models import Catalog
from spycloud_relay.tiles.aggregate import (
    DEFAULT_PERIOD,
    PERIODS,
    SEVERITY_CLASSES,
    Aggregate,
    Period,
    severity_class,
)

SUMMARY, PER_DAY, BY_SEVERITY = (
    'spycloud-exposure-summary',
    'spycloud-exposures-per-day',
    'spycloud-exposures-by-severity',
)
ACCOUNTS, SOURCES = 'spycloud-most-exposed-accounts', 'spycloud-newest-breach-sources'
TAGS = ['SpyCloud', 'Exposure', 'Watchlist']
KINDS = ['Corporate credentials', 'Infected users']
# The breach sources a tile may name, by id.
Catalogs = Mapping[int, Catalog]


def definition(
    tile_id: str, kind: str, title: str, short: str, long: str, tags: list[str] = TAGS
) -> dict[str, Any]:
    """A tile as ``POST /tiles`` lists it: every tile serves the same periods."""
    return {
        'id': tile_id,
        'type': kind,
        'title': title,
        'short_description': short,
        'description': long,
        'tags': list(tags),
        'periods': list(PERIODS),
        'default_period': DEFAULT_PERIOD,
    }


TILES = [
    definition(
        SUMMARY,
        'metric_group',
        'Exposure summary',
        'Exposed accounts, new records, infections and plaintext passwords',
        'Across the SpyCloud watchlist in the period: distinct e-mail accounts exposed, new '
        'exposure records, infostealer infections (distinct infected machines among records '
        'of severity 25 and above) and plaintext passwords exposed (a count, never a value).',
    ),
    definition(
        PER_DAY,
        'vertical_bar_chart',
        'Exposures per day',
        'New exposure records per day, by severity',
        'New exposure records of the watchlist per day (per week over 90 days), stacked by '
        'severity: Low (2), Medium (5), High (20, plaintext credentials), Critical (25 and '
        'above: infostealer logs and stolen sessions).',
    ),
    definition(
        BY_SEVERITY,
        'donut_graph',
        'Exposures by severity',
        'Records by severity, corporate credentials and infected users',
        "The period's exposure records by severity class and, inside each, corporate "
        'credentials (breaches and combo lists) against infected users (infostealer logs of '
        'a machine).',
    ),
    definition(
        ACCOUNTS,
        'markdown',
        'Most exposed accounts',
        'The ten accounts with the most records in the period',
        'The ten watchlist accounts with the most exposure records in the period: records, '
        'worst severity, newest record and their breach sources. No password is shown.',
    ),
    definition(
        SOURCES,
        'markdown',
        'Newest breach sources',
        "The breach sources behind the period's records, newest first",
        "The breach sources behind the period's watchlist records, newest first: title, "
        'publish date, records in the watchlist and site, each linked to its page on the '
        'SpyCloud portal.',
    ),
]
BY_ID = {tile['id']: tile for tile in TILES}


def tile_data(
    tile_id: str,
    aggregate: Aggregate,
    catalogs: Catalogs,
    ui_url: str,
    computed_at: datetime,
    ttl_s: float,
) -> dict[str, Any]:
    """XDR's tile data: the period observed, how long it may be shown, and the tile's data."""
    doc = envelope(aggregate.period, computed_at, ttl_s)
    doc.update(BUILDERS[tile_id](aggregate, catalogs, ui_url))
    return doc


def envelope(period: Period, computed_at: datetime, ttl_s: float) -> dict[str, Any]:
    """What every tile's data starts with (the infected-devices tiles' too): the period
    observed, how long it may be shown (until its cached picture expires), for the org."""
    return {
        'observed_time': {'start_time': ctim_time(period.start), 'end_time': ctim_time(period.end)},
        'valid_time': {
            'start_time': ctim_time(computed_at),
            'end_time': ctim_time(computed_at + timedelta(seconds=ttl_s)),
        },
        'cache_scope': 'org',
    }


def summary(aggregate: Aggregate, catalogs: Catalogs, ui_url: str) -> dict[str, Any]:
    return {
        'data': [
            metric('user', 'Exposed accounts', len(aggregate.accounts)),
            metric('bulleted-list', 'New exposure records', aggregate.records),
            metric('device-type', 'Infostealer infections', len(aggregate.machines)),
            metric('warning', 'Plaintext passwords exposed', aggregate.plaintext),
        ]
    }


def per_day(aggregate: Aggregate, catalogs: Catalogs, ui_url: str) -> dict[str, Any]:
    weekly = aggregate.period.weekly
    rows = []
    for bucket, counts in aggregate.by_bucket.items():
        stamp = datetime.combine(bucket, time(), tzinfo=UTC)
        rows.append(
            {
                'key': int(stamp.timestamp() * 1000),
                'label': ('Week of ' if weekly else '') + bucket.isoformat(),
                'value': sum(counts.values()),
                'values': [
                    {'key': kind, 'value': counts[kind], 'tooltip': f'{counts[kind]} {kind}'}
                    for kind in SEVERITY_CLASSES
                    if counts[kind]
                ],
            }
        )
    return {
        'keys': [{'key': kind, 'label': kind} for kind in SEVERITY_CLASSES],
        'key_type': 'timestamp',
        'data': rows,
    }


def by_severity(aggregate: Aggregate, catalogs: Catalogs, ui_url: str) -> dict[str, Any]:
    present = [kind for kind in SEVERITY_CLASSES if sum(aggregate.by_class[kind].values())]
    return {
        'labels': [present, list(KINDS)],
        'label_headers': ['Severity', 'Kind'],
        'data': [
            {
                'key': index,
                'value': sum(aggregate.by_class[kind].values()),
                'segments': [
                    {'key': 0, 'value': aggregate.by_class[kind]['corporate']},
                    {'key': 1, 'value': aggregate.by_class[kind]['infected']},
                ],
            }
            for index, kind in enumerate(present)
        ],
    }


def most_exposed(aggregate: Aggregate, catalogs: Catalogs, ui_url: str) -> dict[str, Any]:
    lines = [
        '| Account | Records | Worst severity | Newest | Breach sources |',
        '| --- | ---: | --- | --- | --- |',
    ]
    for email, account in aggregate.most_exposed():
        top = sorted(account.sources.items(), key=lambda item: -item[1])[:3]
        names = ', '.join(_title(catalogs.get(source_id), source_id) for source_id, _ in top)
        more = len(account.sources) - len(top)
        lines.append(
            f'| {text(email)} | {account.records} | {severity_class(account.worst)} '
            f'({account.worst}) | {account.newest.isoformat()} | {names}'
            + (f' and {more} more' if more > 0 else '')
            + ' |'
        )
    return {'data': _with_notes(aggregate, lines, empty='No exposure records in the period.')}


def newest_sources(aggregate: Aggregate, catalogs: Catalogs, ui_url: str) -> dict[str, Any]:
    lines = [
        '| Breach source | Published | Records in the watchlist | Site |',
        '| --- | --- | ---: | --- |',
    ]
    for source_id, source in aggregate.newest_sources():
        catalog = catalogs.get(source_id)
        title = _title(catalog, source_id)
        linked = portal_link(title, ui_url, catalog.text('uuid') if catalog is not None else None)
        published = catalog.published if catalog is not None else None
        lines.append(
            f'| {linked} | {published.date().isoformat() if published else "—"} | '
            f'{source.records} | {text(breached_domain(catalog) or "—")} |'
        )
    return {'data': _with_notes(aggregate, lines, empty='No breach sources in the period.')}


BUILDERS: dict[str, Callable[[Aggregate, Catalogs, str], dict[str, Any]]] = {
    SUMMARY: summary,
    PER_DAY: per_day,
    BY_SEVERITY: by_severity,
    ACCOUNTS: most_exposed,
    SOURCES: newest_sources,
}


def metric(icon: str, label: str, value: int) -> dict[str, Any]:
    """One value of a ``metric_group`` tile (the infected-devices summary's too)."""
    return {'icon': icon, 'label': label, 'value': value, 'value_unit': 'integer'}


def _title(catalog: Catalog | None, source_id: int) -> str:
    title = catalog.text('title') if catalog is not None else None
    return text(title or f'SpyCloud breach source {source_id}')


def _with_notes(aggregate: Aggregate, lines: list[str], empty: str) -> list[str]:
    if len(lines) == 2:
        lines = [empty]
    if aggregate.missing_days:
        days = len(aggregate.missing_days)
        lines = lines + [
            '',
            f'*Partial: the records of {days} of {len(aggregate.period.days)} days of the '
            'period did not arrive; the counts are lower bounds.*',
        ]
    return lines
