"""``relay``: the relay's lookup from a terminal, key checks, test tokens, and the simulator.

    pipenv run relay lookup --simulator admin@example.org
    SPYCLOUD_API_KEY=... pipenv run relay lookup jane.doe@example.com 203.0.113.9
    pipenv run relay check
    pipenv run relay simulator            # in one terminal
    pipenv run relay token                # in another: a token for a local relay

Exit codes: 0 success, 1 SpyCloud or lookup error, 2 bad usage, 3 bad configuration.
"""

import ipaddress
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TypeVar

import click

from spycloud_relay.api.module_settings import (
    DEFAULT_VERDICT_DAYS,
    DEFAULT_VERDICT_SEVERITY,
    SEVERITY_LEVELS,
    VERDICT_SEVERITIES,
    ModuleSettings,
)
from spycloud_relay.config import VERSION, ConfigError, Settings
from spycloud_relay.ctim.facts import DEFAULT_MIN_LENGTH, MAX_PASSWORD_LENGTH, PasswordPolicy
from spycloud_relay.deadline import DeadlineReached
from spycloud_relay.errors import RelayError
from spycloud_relay.spycloud.client import PAGE_ENDPOINTS, SpyCloudClient
from spycloud_relay.spycloud.models import Exposure, Observable
from spycloud_relay.spycloud.watchlist import identifier as watchlist_identifier
from spycloud_relay.spycloud.watchlist import watchlist_type
from spycloud_relay.sync_command import sync
from spycloud_relay.terminal import (
    EXIT_CONFIG,
    EXIT_LOOKUP,
    EXIT_USAGE,
    fail,
    print_bundle,
    print_dashboard,
    print_devices,
    print_tables,
)
from spycloud_relay.tiles.aggregate import DEFAULT_PERIOD, PERIODS
from spycloud_relay.tiles.devices_gather import DeviceTiles, GatheredDevices
from spycloud_relay.tiles.gather import Dashboard

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


@contextmanager
def spycloud_for(simulator: bool, api_url: str | None) -> Iterator[str | None]:
    """The SpyCloud API URL to use: a fresh simulator's when asked, else the one given."""
    if not simulator:
        yield api_url
        return
    with developer_simulator().SpyCloudSimulator() as sim:
        yield sim.url


def developer_simulator() -> Any:
    """The simulator module, which a checkout has beside the package (code/simulator/) and the
    image does not: without it, ``--simulator`` is a configuration error, not a traceback."""
    try:
        import simulator
    except ImportError:
        fail('the simulator is a developer tool: run relay from a checkout to use it', EXIT_CONFIG)
    return simulator


def settings_for(api_url: str | None) -> Settings:
    try:
        settings = Settings.from_env()
        return replace(settings, spycloud_api_url=api_url) if api_url else settings
    except ConfigError as error:
        fail(str(error), EXIT_CONFIG)


def api_key_from(env_name: str, simulator: bool) -> str:
    if simulator:
        key: str = developer_simulator().DEFAULT_API_KEY
        return key
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
@click.option(
    '--password-min-length',
    metavar='N',
    default=str(DEFAULT_MIN_LENGTH),
    show_default=True,
    help='Password policy: an exposed password shorter than N characters fails it '
    f'(0: no minimum; at most {MAX_PASSWORD_LENGTH}).',
)
@click.option(
    '--password-require-symbol',
    is_flag=True,
    help='Password policy: an exposed password without a symbol fails it.',
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
    password_min_length: str,
    password_require_symbol: bool,
    show_passwords: bool,
    as_json: bool,
    api_key_env: str,
    api_url: str | None,
    simulator: bool,
) -> None:
    """Look up e-mails, domains, IPs or usernames, as the relay does for XDR.

    Prints one table per observable: date, severity, breach title, site, the password (masked
    unless --show-passwords), its type, the password policy's check and what to do. Example:

        relay lookup --simulator --password-min-length 14 admin@example.org
    """
    policy = password_policy(password_min_length, password_require_symbol)
    items = [Observable(kind or guess_type(value), value.strip()) for value in observables]
    module = ModuleSettings(
        api_key=api_key_from(api_key_env, simulator),
        entities_limit=limit,
        show_passwords=show_passwords,
        min_severity=int(min_severity or 0),
        lookback_days=lookback_days,
        verdict_min_severity=int(verdict_min_severity),
        verdict_days=verdict_days,
        password_policy=policy,
    )
    results, settings = exposures_of(items, module, simulator, api_url)
    options = module.mapping_options(settings.spycloud_ui_url)
    (print_bundle if as_json else print_tables)(results, options, module.verdict_rule())
    if failed := [r for r in results if isinstance(r, RelayError)]:
        fail('; '.join(sorted({f'{e.code}: {e.message}' for e in failed})), EXIT_LOOKUP)


def password_policy(min_length: str, require_symbol: bool) -> PasswordPolicy:
    """The policy the options ask for, as the module's password policy fields give it; a length
    that is not a whole number from 0 to MAX_PASSWORD_LENGTH is bad usage."""
    text = min_length.strip()
    if (
        not (text.isascii() and text.isdigit() and len(text) <= 6)
        or int(text) > MAX_PASSWORD_LENGTH
    ):
        fail(
            f'--password-min-length must be a whole number of characters from 0 to '
            f'{MAX_PASSWORD_LENGTH}, not {min_length[:40]!r}',
            EXIT_USAGE,
        )
    return PasswordPolicy(min_length=int(text), require_symbol=require_symbol)


def exposures_of(
    items: list[Observable], module: ModuleSettings, simulator: bool, api_url: str | None
) -> tuple[list[Exposure | RelayError], Settings]:
    """What SpyCloud (or the simulator) holds on each observable, and the settings asked with."""
    with spycloud_for(simulator, api_url) as url:
        settings = settings_for(url)
        with SpyCloudClient(settings) as client:
            lookup = client.lookup(
                module.api_key, module.entities_limit, module.query(), module.verdict_rule()
            )
            return client.exposures(lookup, items), settings


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
        fail(f'{value!r} is not an e-mail address, a domain or an IPv4 address', EXIT_USAGE)
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
    """Print the exposure dashboard XDR shows for the watchlist, and the infected devices
    of SpyCloud Compass, in the terminal."""
    key = api_key_from(api_key_env, simulator)
    with spycloud_for(simulator, api_url) as url:
        settings = settings_for(url)
        with SpyCloudClient(settings) as client:
            try:
                gathered = Dashboard(client, settings).gathered(client.lookup(key), period)
            except RelayError as error:
                fail(f'{error.code}: {error.message}', EXIT_LOOKUP)
            devices: GatheredDevices | RelayError
            try:  # a gathering of its own, with a deadline of its own
                devices = DeviceTiles(client, settings).gathered(client.lookup(key), period)
            except RelayError as error:
                devices = error  # printed as a warning: the dashboard above stands
    print_dashboard(gathered, settings.spycloud_ui_url, period)
    print_devices(devices, period)


def add_developer_commands(group: click.Group) -> None:
    """``relay simulator`` and ``relay token`` (code/devcommands.py) come with a checkout, beside
    the simulator they start; the image's ``relay`` has the other commands only."""
    try:
        from devcommands import simulator, token
    except ImportError:
        return
    group.add_command(token)
    group.add_command(simulator)


cli.add_command(sync)
add_developer_commands(cli)


def main() -> None:
    cli(prog_name='relay')


if __name__ == '__main__':
    main()
