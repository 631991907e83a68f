"""``make demo``: the relay under gunicorn, against the SpyCloud simulator, one real lookup.

Starts the simulator and the local JWKS issuer, starts the relay with gunicorn
on 127.0.0.1:9090 pointed at them, posts ``observables.json`` with a freshly
signed token, prints a summary and the JSON, then stops everything it started.
No SpyCloud account and no network beyond loopback are needed.
"""

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import requests

from localrelay import gunicorn_relay
from simulator import JwksIssuer, SpyCloudSimulator
from spycloud_relay.spycloud.client import PAGE_ENDPOINTS

HERE = Path(__file__).resolve().parent
OBSERVABLES = HERE.parent / 'observables.json'


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
        token = issuer.mint(relay_url)
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
        return 0 if response.status_code == 200 and 'data' in body else 1


if __name__ == '__main__':
    sys.exit(main())
