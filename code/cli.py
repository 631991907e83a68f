"""``relay``: the relay's lookup from a terminal, key checks, test tokens, and the simulator.

    pipenv run relay lookup --simulator admin@example.org
    SPYCLOUD_API_KEY=... pipenv run relay lookup jane.doe@example.com 203.0.113.9
    pipenv run relay check
    pipenv run relay simulator            # in one terminal
    pipenv run relay token                # in another: a token for a local relay

Exit codes: 0 success, 1 SpyCloud or lookup error, 2 bad usage, 3 bad configuration.
"""

import ipaddress
import json
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from api.module_settings import (
    DEFAULT_VERDICT_DAYS,
    DEFAULT_VERDICT_SEVERITY,
    SEVERITY_LEVELS,
    VERDICT_SEVERITIES,
    ModuleSettings,
)
from config import VERSION, ConfigError, Settings
from ctim.answer import observe_answer
from ctim.mapping import MappingOptions, catalog_of, mask
from ctim.verdicts import reason, valid_time
from deadline import DeadlineReached
from errors import RelayError
from spycloud.client import PAGE_ENDPOINTS, VERDICT_TYPES, SpyCloudClient
from spycloud.lookup import VerdictRule
from spycloud.models import Exposure
from spycloud.watchlist import identifier as watchlist_identifier
from spycloud.watchlist import watchlist_type
from tiles.aggregate import DEFAULT_PERIOD, PERIODS
from tiles.dashboard import TILES, tile_data
from tiles.gather import Dashboard

DEFAULT_STATE_DIR = Path(tempfile.gettempdir()) / 'spycloud-relay-simulator'
EXIT_LOOKUP, EXIT_CONFIG = 1, 3
# A click command's function, as the shared options decorate it.
Command = TypeVar('Command', bound=Callable[..., Any])


def guess_type(value: str) -> str:
    """email for a@b, ip/ipv6 for addresses, domain for names with a dot, else user."""
    if '@' in value:
        return 'email'
    try:
        return 'ipv6' if ipaddress.ip_address(value).version == 6 else 'ip'
    except ValueError:
        pass
    return 'domain' if '.' in value and ' ' not in value else 'user'


def fail(message: str, code: int) -> NoReturn:
    Console(stderr=True, soft_wrap=True).print(f'[bold red]error:[/] {message}', highlight=False)
    sys.exit(code)


@contextmanager
def spycloud_for(simulator: bool, api_url: str | None) -> Iterator[str | None]:
    """The SpyCloud API URL to use: a fresh simulator's when asked, else the one given."""
    if not simulator:
        yield api_url
        return
    from simulator import SpyCloudSimulator

    with SpyCloudSimulator() as sim:
        yield sim.url


def settings_for(api_url: str | None) -> Settings:
    try:
        settings = Settings.from_env()
        return replace(settings, spycloud_api_url=api_url) if api_url else settings
    except ConfigError as error:
        fail(str(error), EXIT_CONFIG)


def api_key_from(env_name: str, simulator: bool) -> str:
    if simulator:
        from simulator import DEFAULT_API_KEY

        return DEFAULT_API_KEY
    key = os.environ.get(env_name, '').strip()
    if not key:
        fail(
            f'no API key: set the {env_name} environment variable '
            '(or pass --api-key-env NAME, or --simulator to try the built-in simulator)',
            EXIT_CONFIG,
        )
    return key


@click.group(context_settings={'help_option_names': ['-h', '--help'], 'max_content_width': 100})
@click.version_option(VERSION, prog_name='relay')
def cli() -> None:
    """The SpyCloud ATO Prevention relay for Cisco XDR, from the command line.

    `lookup` does what the relay does for XDR and prints it; `check` verifies an API key;
    `simulator` and `token` let you run and call a relay locally without a SpyCloud account.
    Settings come from the same environment variables as the relay (see the README).
    """


api_options = [
    click.option(
        '--api-key-env',
        default='SPYCLOUD_API_KEY',
        show_default=True,
        help='Name of the environment variable holding the SpyCloud API key.',
    ),
    click.option(
        '--api-url',
        default=None,
        help="SpyCloud API base URL (default: SPYCLOUD_API_URL or SpyCloud's).",
    ),
    click.option(
        '--simulator', is_flag=True, help='Use the built-in SpyCloud simulator instead of SpyCloud.'
    ),
]


def with_api_options(command: Command) -> Command:
    for option in reversed(api_options):
        command = option(command)
    return command


@cli.command()
@click.argument('observables', nargs=-1, required=True, metavar='OBSERVABLE...')
@click.option(
    '--type',
    'kind',
    type=click.Choice(sorted(PAGE_ENDPOINTS)),
    default=None,
    help='Observable type for every value (default: guessed from each value).',
)
@click.option(
    '--limit',
    type=click.IntRange(1, 1000),
    default=100,
    show_default=True,
    help='Most records per observable, newest first.',
)
@click.option(
    '--min-severity',
    type=click.Choice([str(s) for s in SEVERITY_LEVELS]),
    default=None,
    help='Keep records at or above this SpyCloud severity.',
)
@click.option(
    '--lookback-days',
    type=click.IntRange(0, 36500),
    default=0,
    help='Keep records published in the last N days (0: all time).',
)
@click.option(
    '--verdict-min-severity',
    type=click.Choice([str(s) for s in VERDICT_SEVERITIES]),
    default=str(DEFAULT_VERDICT_SEVERITY),
    show_default=True,
    help='Suspicious from a record at or above this severity in the verdict window.',
)
@click.option(
    '--verdict-days',
    type=click.IntRange(0, 36500),
    default=DEFAULT_VERDICT_DAYS,
    show_default=True,
    help='The verdict window in days (0: no verdicts).',
)
@click.option('--show-passwords', is_flag=True, help='Show passwords in clear text.')
@click.option('--json', 'as_json', is_flag=True, help='Print the CTIM bundle XDR would get.')
@with_api_options
def lookup(
    observables: tuple[str, ...],
    kind: str | None,
    limit: int,
    min_severity: str | None,
    lookback_days: int,
    verdict_min_severity: str,
    verdict_days: int,
    show_passwords: bool,
    as_json: bool,
    api_key_env: str,
    api_url: str | None,
    simulator: bool,
) -> None:
    """Look up e-mails, domains, IPs or usernames, as the relay does for XDR.

    Prints one table per observable: date, severity, breach title, site, password type and
    the password (masked unless --show-passwords). Example:

        relay lookup --simulator admin@example.org r6c3.example.net
    """
    items = [{'type': kind or guess_type(value), 'value': value.strip()} for value in observables]
    key = api_key_from(api_key_env, simulator)
    module = ModuleSettings(
        api_key=key,
        entities_limit=limit,
        show_passwords=show_passwords,
        min_severity=int(min_severity or 0),
        lookback_days=lookback_days,
        verdict_min_severity=int(verdict_min_severity),
        verdict_days=verdict_days,
    )
    rule = module.verdict_rule()
    with spycloud_for(simulator, api_url) as url:
        settings = settings_for(url)
        with SpyCloudClient(settings) as client:
            results = client.exposures(client.lookup(key, limit, module.query(), rule), items)
    options = MappingOptions(show_passwords=show_passwords, ui_url=settings.spycloud_ui_url)
    failed = [r for r in results if isinstance(r, RelayError)]
    if as_json:
        print_bundle(results, options, rule)
    else:
        print_tables(results, show_passwords, rule)
    if failed:
        fail('; '.join(sorted({f'{e.code}: {e.message}' for e in failed})), EXIT_LOOKUP)


def print_bundle(
    results: list[Exposure | RelayError], options: MappingOptions, rule: VerdictRule | None
) -> None:
    click.echo(json.dumps(observe_answer(results, options, rule=rule).body(), indent=2))


def print_tables(
    results: list[Exposure | RelayError], show_passwords: bool, rule: VerdictRule | None
) -> None:
    console = Console()
    for result in results:
        if isinstance(result, RelayError):
            continue
        observable = result.observable
        table = Table(
            title=f'{observable["type"]} {observable["value"]}: {len(result.records)} '
            f'of {result.hits} SpyCloud records',
            title_justify='left',
        )
        for column in ('date', 'severity', 'breach', 'site', 'password type', 'password'):
            table.add_column(column, overflow='fold')
        for record in result.records:
            catalog = catalog_of(result.catalogs, record.source_id)
            password = record.get('password')
            shown = (
                ''
                if password is None
                else (str(password) if show_passwords else mask(password, None))
            )
            table.add_row(
                record.published.date().isoformat(),
                str(record.severity or ''),
                (catalog.text('title') if catalog else None) or f'#{record.source_id}',
                (catalog.text('site') if catalog else None) or '',
                str(record.get('password_type') or ''),
                shown,
            )
        console.print(table)
        if rule is not None and observable['type'] in VERDICT_TYPES:
            console.print(verdict_line(result, rule), highlight=False, soft_wrap=True)
        for warning in result.warnings:
            console.print(f'[yellow]warning[/] {warning.code}: {warning.message}', highlight=False)


def verdict_line(result: Exposure, rule: VerdictRule) -> str:
    """``verdict: Suspicious until 2027-02-18 (2 exposures in 90 days, ...)`` or none."""
    if result.evidence is None:
        return (
            f'verdict: none (no record at severity {rule.min_severity} or above in the last '
            f'{rule.days} days; never Clean)'
        )
    until = valid_time(result.evidence, rule)['end_time'][:10]
    return f'[bold yellow]verdict: Suspicious[/] until {until} ({reason(result.evidence, rule)})'


@cli.command()
@with_api_options
def check(api_key_env: str, api_url: str | None, simulator: bool) -> None:
    """Verify a SpyCloud API key with one cheap call, as /health does."""
    key = api_key_from(api_key_env, simulator)
    with spycloud_for(simulator, api_url) as url:
        settings = settings_for(url)
        with SpyCloudClient(settings) as client:
            try:
                client.check(client.lookup(key))
            except RelayError as error:
                fail(f'{error.code}: {error.message}', EXIT_LOOKUP)
    click.echo(f'ok: SpyCloud at {settings.spycloud_api_url} accepts the key')


@cli.command()
@click.argument('action', type=click.Choice(['show', 'add', 'remove', 'verify']))
@click.argument('value')
@with_api_options
def watchlist(
    action: str, value: str, api_key_env: str, api_url: str | None, simulator: bool
) -> None:
    """Show an identifier's state on the SpyCloud watchlist, or add, remove or verify it, as
    XDR's response actions do. VALUE is an e-mail address, a domain or an IPv4 address.

        relay watchlist --simulator show pending.example
    """
    kind = watchlist_type(guess_type(value), value)
    if kind is None:
        fail(f'{value!r} is not an e-mail address, a domain or an IPv4 address', 2)
    key = api_key_from(api_key_env, simulator)
    with spycloud_for(simulator, api_url) as url, SpyCloudClient(settings_for(url)) as client:
        lookup, identifier = client.lookup(key), watchlist_identifier(value)
        try:
            if action == 'show':
                item = client.watchlist.item(lookup, identifier)
                click.echo(
                    f'{identifier} ({kind}): '
                    + (
                        'not on the watchlist'
                        if item is None
                        else f'{item.status.lower() or "on the watchlist"}, '
                        f'{"verified" if item.verified else "not verified"}'
                    )
                )
                return
            outcome = {
                'add': lambda: client.watchlist.add(lookup, identifier, kind),
                'remove': lambda: client.watchlist.remove(lookup, identifier),
                'verify': lambda: client.watchlist.verify(lookup, identifier),
            }[action]()
        except (RelayError, DeadlineReached) as error:
            fail(getattr(error, 'message', 'SpyCloud did not answer in time'), EXIT_LOOKUP)
    click.echo(f'{identifier} ({kind}): {outcome}')


@cli.command()
@click.option(
    '--period',
    type=click.Choice(list(PERIODS)),
    default=DEFAULT_PERIOD,
    show_default=True,
    help='The dashboard period.',
)
@with_api_options
def tiles(period: str, api_key_env: str, api_url: str | None, simulator: bool) -> None:
    """Print the exposure dashboard XDR shows for the watchlist, in the terminal."""
    key = api_key_from(api_key_env, simulator)
    with spycloud_for(simulator, api_url) as url:
        settings = settings_for(url)
        with SpyCloudClient(settings) as client:
            try:
                gathered = Dashboard(client, settings).gathered(client.lookup(key), period)
            except RelayError as error:
                fail(f'{error.code}: {error.message}', EXIT_LOOKUP)
    console = Console()
    for tile in TILES:
        doc = tile_data(
            tile['id'],
            gathered.aggregate,
            gathered.catalogs,
            settings.spycloud_ui_url,
            gathered.computed_at,
            0,
        )
        console.rule(f'{tile["title"]} ({period})')
        print_tile(console, tile['type'], doc)
    for warning in gathered.aggregate.warnings:
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


@cli.command()
@click.option(
    '--state-dir',
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    help='Where `relay simulator` keeps its signing key.',
)
@click.option(
    '--aud',
    default='http://127.0.0.1:9090',
    show_default=True,
    help="The relay's root URL as it sees itself (the token's audience).",
)
@click.option('--api-key', default=None, help='The `key` claim (default: the simulator key).')
@click.option('--limit', type=int, default=None, help='The CTR_ENTITIES_LIMIT claim.')
@click.option('--show-passwords', is_flag=True, help='The show_passwords claim.')
@click.option('--min-severity', default=None, help='The min_severity claim.')
@click.option('--lookback-days', type=int, default=None, help='The lookback_days claim.')
def token(
    state_dir: Path,
    aud: str,
    api_key: str | None,
    limit: int | None,
    show_passwords: bool,
    min_severity: str | None,
    lookback_days: int | None,
) -> None:
    """Mint a configuration token signed by the local JWKS issuer of `relay simulator`.

    \b
    curl -s -X POST http://127.0.0.1:9090/observe/observables \\
         -H "Authorization: Bearer $(pipenv run relay token)" \\
         -d '[{"type": "email", "value": "admin@example.org"}]'
    """
    from simulator import mint_token_from_state

    if not (state_dir / 'state.json').exists():
        fail(f'no issuer state in {state_dir}: start `relay simulator` first', EXIT_CONFIG)
    claims = {
        'CTR_ENTITIES_LIMIT': limit,
        'min_severity': min_severity,
        'lookback_days': lookback_days,
        'show_passwords': True if show_passwords else None,
    }
    if api_key:
        claims['key'] = api_key
    try:
        click.echo(mint_token_from_state(str(state_dir), aud, **claims))
    except (OSError, ValueError, KeyError) as error:
        fail(f'cannot read the issuer state in {state_dir}: {error}', EXIT_CONFIG)


@cli.command()
@click.option('--spycloud-port', type=int, default=8081, show_default=True)
@click.option('--jwks-port', type=int, default=8443, show_default=True)
@click.option(
    '--latency-ms',
    type=float,
    default=0,
    show_default=True,
    help='Delay of every simulated SpyCloud answer.',
)
@click.option(
    '--state-dir',
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    help='Where the issuer keeps its keys, so `relay token` can sign.',
)
def simulator(spycloud_port: int, jwks_port: int, latency_ms: float, state_dir: Path) -> None:
    """Run the SpyCloud simulator and a local JWKS issuer until Ctrl-C.

    Prints the environment to start a relay against them and a curl example.
    """
    from simulator import JwksIssuer, SpyCloudSimulator
    from simulator.data import DEFAULT_API_KEY

    state_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        issuer = JwksIssuer(port=jwks_port, state_dir=str(state_dir)).start()
        sim = SpyCloudSimulator(port=spycloud_port, latency=latency_ms / 1000).start()
    except OSError as error:
        fail(
            f'cannot start the simulator: {error} (another one running? try other ports)',
            EXIT_CONFIG,
        )
    click.echo(f"""SpyCloud simulator  {sim.url}   (API key: {DEFAULT_API_KEY})
JWKS issuer         https://{issuer.jwks_host}/.well-known/jwks

Start a relay against them (from code/, in another terminal):
  SPYCLOUD_API_URL={sim.url} ALLOWED_JWKS_HOSTS={issuer.jwks_host} \\
  REQUESTS_CA_BUNDLE={issuer.ca_pem_path} GUNICORN_BIND=127.0.0.1:9090 \\
  pipenv run gunicorn --config gunicorn.conf.py 'app:create_app()'

Then call it:
  curl -s -X POST http://127.0.0.1:9090/observe/observables \\
       -H "Authorization: Bearer $(pipenv run relay token --state-dir {state_dir})" \\
       -d '[{{"type": "email", "value": "admin@example.org"}}]'

Addresses like r100c20@any.example get exactly 100 records over 20 sources. Ctrl-C stops.""")
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
        issuer.stop()


def main() -> None:
    cli(prog_name='relay')


if __name__ == '__main__':
    main()
