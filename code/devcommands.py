"""The ``relay`` command's developer commands: ``relay simulator`` runs the SpyCloud simulator
and a local JWKS issuer, and ``relay token`` mints a token signed by that issuer, to call a
relay started against them."""

import signal
import tempfile
import threading
from pathlib import Path

import click

from spycloud_relay.terminal import EXIT_CONFIG, fail

DEFAULT_STATE_DIR = Path(tempfile.gettempdir()) / 'spycloud-relay-simulator'


@click.command()
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


@click.command()
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
  pipenv run gunicorn --config gunicorn_conf.py 'spycloud_relay.app:create_app()'

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
