"""``make demo``: the relay under gunicorn, against the SpyCloud simulator, one real lookup,
then one ``relay sync`` into a simulated XDR.

Starts the simulator and the local JWKS issuer, starts the relay with gunicorn
on 127.0.0.1:9090 pointed at them, posts ``observables.json`` with a freshly
signed token, prints a summary and the JSON; then runs one sync of the tenant's watchlist
(the default look-back) into the fake XDR (simulator/xdr.py) and prints its incidents as XDR's
queue lists them. Stops everything it started. No SpyCloud account, no XDR and no network
beyond loopback are needed.
"""

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests

from localrelay import gunicorn_relay
from simulator import (
    DEFAULT_API_KEY,
    DEFAULT_XDR_CLIENT,
    JwksIssuer,
    SpyCloudSimulator,
    XdrSimulator,
)
from spycloud_relay.config import Settings
from spycloud_relay.spycloud.client import PAGE_ENDPOINTS
from spycloud_relay.sync.service import run_once
from spycloud_relay.sync.settings import SyncSettings

HERE = Path(__file__).resolve().parent
OBSERVABLES = HERE.parent / 'observables.json'
QUEUE_ROWS = 15  # incidents listed; the rest are counted
TITLE_WIDTH = 72


def summary(observables, body):
    lines = []
    data = body.get('data', {})
    sightings = data.get('sightings', {}).get('docs', [])
    for observable in observables:
        if observable['type'].lower() not in PAGE_ENDPOINTS:
            lines.append(
                f'  {observable["type"]:6} {observable["value"]:32} not a supported type: dropped'
            )
            continue
        own = [s for s in sightings if s['observables'][0]['value'] == observable['value']]
        severities = Counter(s['severity'] for s in own)
        mix = ', '.join(f'{n} {name}' for name, n in severities.most_common()) or 'none'
        lines.append(
            f'  {observable["type"]:6} {observable["value"]:32} {len(own):3} sightings ({mix})'
        )
    for plural in ('sightings', 'indicators', 'relationships'):
        lines.append(f'  {plural:14} {data.get(plural, {}).get("count", 0)}')
    leaks = sorted({r['related']['value'] for s in sightings for r in s.get('relations', [])})
    if leaks:
        lines.append(f'  Leaked_From    {", ".join(leaks[:6])}{" ..." if len(leaks) > 6 else ""}')
    for error in body.get('errors', []):
        lines.append(f'  {error["type"]:8} {error["code"]}: {error["message"]}')
    if sightings:
        first = sightings[0]
        names = [c['name'] for c in first['data']['columns']]
        row = dict(zip(names, first['data']['rows'][0], strict=True))
        if 'password' in row:
            lines.append(f'  newest password, as an analyst sees it: {row["password"]}')
    return '\n'.join(lines)


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--port', type=int, default=9090, help='relay port (default 9090)')
    parser.add_argument(
        '--observables',
        type=Path,
        default=OBSERVABLES,
        help='JSON array of observables to look up (default observables.json)',
    )
    parser.add_argument('--quiet-json', action='store_true', help='print the summary only')
    return parser.parse_args(argv)


def lookup(relay_url, token, observables, args, spycloud):
    """POST the observables, print what came back; True when the relay answered with data."""
    started = time.monotonic()
    response = requests.post(
        relay_url + '/observe/observables',
        json=observables,
        headers={'Authorization': f'Bearer {token}'},
        timeout=60,
    )
    elapsed = time.monotonic() - started
    body = response.json()
    print(
        f'POST /observe/observables with {args.observables.name}: '
        f'HTTP {response.status_code} in {elapsed * 1000:.0f} ms, '
        f'{spycloud.stats()["requests"]} SpyCloud calls'
    )
    print(summary(observables, body))
    if not args.quiet_json:
        print(json.dumps(body, indent=2))
    return response.status_code == 200 and 'data' in body


def sync_env(spycloud, xdr, checkpoint_file):
    """What ``relay sync`` would read of the environment, pointed at the two simulators."""
    client_id, client_password = DEFAULT_XDR_CLIENT
    return {
        'SPYCLOUD_API_URL': spycloud.url,
        'SPYCLOUD_API_KEY': DEFAULT_API_KEY,
        'XDR_API_URL': xdr.url,
        'XDR_CLIENT_ID': client_id,
        'XDR_CLIENT_PASSWORD': client_password,
        'SYNC_CHECKPOINT_FILE': str(checkpoint_file),
    }


def sync_once(spycloud, xdr):
    """One sync (a first run: the default look-back) into ``xdr``; its summary and seconds."""
    with tempfile.TemporaryDirectory(prefix='relay-demo-sync-') as directory:
        env = sync_env(spycloud, xdr, Path(directory) / 'sync.json')
        started = time.monotonic()
        done = run_once(
            Settings.from_env(env),
            SyncSettings.from_env(env),
            dry_run=False,
            progress=lambda line: None,
            out=lambda line: None,  # a dry run's bundles only
        )
        return done, time.monotonic() - started


def queue(xdr):
    """The incidents as XDR's queue lists them, newest first (opened, then newest record):
    (severity, title, status, opened, sightings)."""
    members = Counter()
    newest = {}
    sightings = {s['id']: s for s in xdr.entities('sighting')}
    for link in xdr.entities('relationship'):
        seen = sightings.get(link['source_ref'])
        if link['relationship_type'] != 'member-of' or seen is None:
            continue
        members[link['target_ref']] += 1
        start = seen['observed_time']['start_time']
        newest[link['target_ref']] = max(newest.get(link['target_ref'], ''), start)
    incidents = sorted(
        xdr.entities('incident'),
        key=lambda i: (i['incident_time']['opened'], newest.get(i['id'], '')),
        reverse=True,
    )
    return [
        (i['severity'], i['title'], i['status'], i['incident_time']['opened'], members[i['id']])
        for i in incidents
    ]


def queue_table(rows, limit=QUEUE_ROWS):
    """A compact table of the queue's first ``limit`` rows, and how many more there are."""
    lines = [f'  {"severity":9} {"title":{TITLE_WIDTH}} {"status":7} {"opened":17} sightings']
    for severity, title, status, opened, count in rows[:limit]:
        shown = title if len(title) <= TITLE_WIDTH else title[: TITLE_WIDTH - 1] + '…'
        when = opened[:16].replace('T', ' ')
        lines.append(f'  {severity:9} {shown:{TITLE_WIDTH}} {status:7} {when:17} {count:>9}')
    if len(rows) > limit:
        lines.append(f'  … and {len(rows) - limit} more')
    return '\n'.join(lines)


def sync_demo(spycloud):
    """One sync into a fresh fake XDR, its summary and the queue it leaves; True when it
    imported every window without an error."""
    with XdrSimulator() as xdr:
        print(f'\nrelay sync --once, into a simulated XDR at {xdr.url}:', flush=True)
        done, seconds = sync_once(spycloud, xdr)
        print(
            f'{done.records_read} records read, {done.incidents_created} incidents and '
            f'{done.sightings_created} sightings created, {done.errors} errors, '
            f'{done.spycloud_calls} SpyCloud calls, XDR requests: {xdr.count("token")} token, '
            f'{xdr.count("import")} import; {seconds:.1f} s'
        )
        print(f'XDR incident queue, newest first:\n{queue_table(queue(xdr))}')
        return done.complete


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    observables = json.loads(args.observables.read_text())

    with (
        JwksIssuer() as issuer,
        SpyCloudSimulator() as spycloud,
        gunicorn_relay(
            spycloud, issuer, port=args.port, WEB_CONCURRENCY=1, LOG_LEVEL='warning'
        ) as relay_url,
    ):
        print(
            f'SpyCloud simulator: {spycloud.url}\nJWKS issuer:        https://{issuer.jwks_host}'
            f'\nRelay (gunicorn):   {relay_url}\n',
            flush=True,
        )
        answered = lookup(relay_url, issuer.mint(relay_url), observables, args, spycloud)
        synced = sync_demo(spycloud)
        return 0 if answered and synced else 1


if __name__ == '__main__':
    sys.exit(main())
