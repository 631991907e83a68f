"""What the ``relay`` command prints: a lookup as rich tables (or the CTIM bundle XDR would
get), an account's verdict line, the dashboard's tiles, and a failure as one line and an
exit code (0 success, 1 SpyCloud or lookup error, 2 bad usage, 3 bad configuration)."""

import json
import sys
from collections.abc import Mapping
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from spycloud_relay.ctim.answer import observe_answer
from spycloud_relay.ctim.mapping import MappingOptions, catalog_of, facts_of
from spycloud_relay.ctim.verdicts import reason, valid_time
from spycloud_relay.ctim.withhold import mask
from spycloud_relay.errors import RelayError
from spycloud_relay.spycloud.client import VERDICT_TYPES
from spycloud_relay.spycloud.lookup import VerdictRule
from spycloud_relay.spycloud.models import BreachRecord, Catalog, Exposure
from spycloud_relay.tiles import devices as device_tiles
from spycloud_relay.tiles.dashboard import TILES, tile_data
from spycloud_relay.tiles.devices_gather import GatheredDevices
from spycloud_relay.tiles.gather import Gathered

EXIT_LOOKUP, EXIT_USAGE, EXIT_CONFIG = 1, 2, 3


def fail(message: str, code: int) -> NoReturn:
    """One clear line on standard error, then the exit code: never a traceback."""
    Console(stderr=True, soft_wrap=True).print(f'[bold red]error:[/] {message}', highlight=False)
    sys.exit(code)


def print_bundle(
    results: list[Exposure | RelayError], options: MappingOptions, rule: VerdictRule | None
) -> None:
    click.echo(json.dumps(observe_answer(results, options, rule=rule).body(), indent=2))


def print_tables(
    results: list[Exposure | RelayError], options: MappingOptions, rule: VerdictRule | None
) -> None:
    """One table per observable, a row per record: what it exposed and what to do, in the words
    of the sighting's data table (password type, policy check, remediation)."""
    console = Console()
    for result in results:
        if isinstance(result, RelayError):
            continue
        observable = result.observable
        table = Table(
            title=f'{observable.type} {observable.value}: {len(result.records)} '
            f'of {result.hits} SpyCloud records',
            title_justify='left',
        )
        for column in COLUMNS:
            table.add_column(column, overflow='fold', no_wrap=column in UNBROKEN)
        for record in result.records:
            table.add_row(*record_row(record, result.catalogs, options))
        console.print(table)
        if rule is not None and observable.type in VERDICT_TYPES:
            console.print(verdict_line(result, rule), highlight=False, soft_wrap=True)
        for warning in result.warnings:
            console.print(f'[yellow]warning[/] {warning.code}: {warning.message}', highlight=False)


# The breach cell holds the title over the site, so that seven columns read on 80 characters.
COLUMNS = ('date', 'sev', 'breach / site', 'password', 'type', 'policy', 'remediation')
UNBROKEN = frozenset({'date', 'sev'})


def record_row(
    record: BreachRecord, catalogs: Mapping[int, Catalog], options: MappingOptions
) -> list[str]:
    """A record's cells: the password masked unless shown, the facts as the mapping works them
    out with the same options (policy included)."""
    catalog = catalog_of(catalogs, record.source_id)
    password = record.get('password')
    shown = (
        ''
        if password is None
        else (str(password) if options.show_passwords else mask(password, None))
    )
    facts = facts_of(record, options)
    return [
        record.published.date().isoformat(),
        str(record.severity or ''),
        '\n'.join(
            filter(
                None,
                [
                    (catalog.text('title') if catalog else None) or f'#{record.source_id}',
                    catalog.text('site') if catalog else None,
                ],
            )
        ),
        shown,
        facts['password_type'],
        facts['password_policy'],
        facts['remediation'],
    ]


def verdict_line(result: Exposure, rule: VerdictRule) -> str:
    """``verdict: Suspicious until 2027-02-18 (2 exposures in 90 days, ...)`` or none."""
    if result.evidence is None:
        return (
            f'verdict: none (no record at severity {rule.min_severity} or above in the last '
            f'{rule.days} days; never Clean)'
        )
    until = valid_time(result.evidence, rule)['end_time'][:10]
    return f'[bold yellow]verdict: Suspicious[/] until {until} ({reason(result.evidence, rule)})'


def print_dashboard(gathered: Gathered, ui_url: str, period: str) -> None:
    """Every tile of the period, as XDR's dashboard shows them, then what is missing."""
    console = Console()
    for tile in TILES:
        doc = tile_data(
            tile['id'], gathered.aggregate, gathered.catalogs, ui_url, gathered.computed_at, 0
        )
        console.rule(f'{tile["title"]} ({period})')
        print_tile(console, tile['type'], doc)
    for warning in gathered.aggregate.warnings:
        console.print(f'[yellow]warning[/] {warning.code}: {warning.message}', highlight=False)


def print_devices(gathered: GatheredDevices | RelayError, period: str) -> None:
    """The infected-devices tiles of the period (SpyCloud Compass), or why they are not."""
    console = Console()
    if isinstance(gathered, RelayError):
        console.rule(f'Infected devices ({period})')
        console.print(f'[yellow]warning[/] {gathered.code}: {gathered.message}', highlight=False)
        return
    for tile in device_tiles.TILES:
        doc = device_tiles.tile_data(tile['id'], gathered.infected, gathered.computed_at, 0)
        console.rule(f'{tile["title"]} ({period})')
        print_tile(console, tile['type'], doc)
    for warning in gathered.infected.warnings:
        console.print(f'[yellow]warning[/] {warning.code}: {warning.message}', highlight=False)


def print_tile(console: Console, kind: str, doc: Mapping[str, Any]) -> None:
    if kind == 'metric_group':
        for metric in doc['data']:
            console.print(f'{metric["label"]}: [bold]{metric["value"]}[/]', highlight=False)
    elif kind == 'vertical_bar_chart':
        table = Table('bar', *[k['label'] for k in doc['keys']], 'total')
        for bar in doc['data']:
            counts = {v['key']: v['value'] for v in bar['values']}
            table.add_row(
                bar['label'],
                *[str(counts.get(k['key'], 0)) for k in doc['keys']],
                str(bar['value']),
            )
        console.print(table)
    elif kind == 'donut_graph':
        table = Table(doc['label_headers'][0], *doc['labels'][1], 'total')
        for part in doc['data']:
            table.add_row(
                doc['labels'][0][part['key']],
                *[str(s['value']) for s in part['segments']],
                str(part['value']),
            )
        console.print(table)
    else:
        console.print(Markdown('\n'.join(doc['data'])))
