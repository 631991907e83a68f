"""Run the SpyCloud simulator and the JWKS issuer (and, asked, the fake XDR) as one process.

Meant for manual relay runs and benchmarks, where the relay lives in another process: the single
JSON line on stdout tells the caller where everything is, and ``mint_token_from_state`` on the
printed ``state_dir`` mints tokens this process's JWKS accepts.
"""

import argparse
import contextlib
import json
import signal
import sys
import threading

from .data import DEFAULT_API_KEY
from .jwks import JwksIssuer
from .spycloud import SpyCloudSimulator
from .xdr import DEFAULT_XDR_CLIENT, XdrSimulator


def _parser():
    parser = argparse.ArgumentParser(
        prog='python -m simulator',
        description='Serve a local SpyCloud Enterprise API v2 simulator and an HTTPS JWKS '
        'issuer (and with --xdr-port a fake XDR) until SIGTERM/SIGINT. Prints one JSON line '
        'with spycloud_url, jwks_host, ca_pem_path, api_key and state_dir once all listen.',
    )
    parser.add_argument(
        '--host', default='127.0.0.1', help='address to bind both servers to (default: %(default)s)'
    )
    parser.add_argument(
        '--spycloud-port',
        type=int,
        default=0,
        help='SpyCloud simulator port; 0 picks a free one (default: 0)',
    )
    parser.add_argument(
        '--jwks-port',
        type=int,
        default=0,
        help='JWKS issuer port; 0 reuses the port saved in --state-dir if '
        'free, else picks a free one (default: 0)',
    )
    parser.add_argument(
        '--latency-ms',
        type=float,
        default=0.0,
        help='delay before every SpyCloud answer, in ms (default: 0)',
    )
    parser.add_argument(
        '--page-size',
        type=int,
        default=1000,
        help='records per SpyCloud page (default: %(default)s)',
    )
    parser.add_argument(
        '--state-dir',
        default=None,
        help='keep the CA, TLS and signing keys here and reuse them on the next '
        'start; without it a temporary directory is used and removed on exit',
    )
    parser.add_argument(
        '--api-key',
        action='append',
        default=None,
        help=f'accepted SpyCloud API key; repeatable (default: {DEFAULT_API_KEY})',
    )
    parser.add_argument(
        '--spycloud-tls',
        action='store_true',
        help='serve the SpyCloud simulator over HTTPS with a certificate from '
        'the same CA as the JWKS issuer',
    )
    parser.add_argument(
        '--xdr-port',
        type=int,
        default=None,
        help='also serve the fake XDR (token and bundle import) on this port, 0 for a free '
        'one; the JSON line then names xdr_url, xdr_client_id and xdr_client_password',
    )
    return parser


def _xdr(args, stack):
    """The fake XDR's part of the JSON line, started when ``--xdr-port`` asks for it."""
    if args.xdr_port is None:
        return {}
    xdr = stack.enter_context(XdrSimulator(host=args.host, port=args.xdr_port))
    client_id, password = DEFAULT_XDR_CLIENT
    return {'xdr_url': xdr.url, 'xdr_client_id': client_id, 'xdr_client_password': password}


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.page_size < 1:
        _parser().error('--page-size must be at least 1')
    keys = args.api_key or [DEFAULT_API_KEY]
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with contextlib.ExitStack() as stack:
        issuer = stack.enter_context(
            JwksIssuer(host=args.host, port=args.jwks_port, state_dir=args.state_dir)
        )
        sim = stack.enter_context(
            SpyCloudSimulator(
                host=args.host,
                port=args.spycloud_port,
                api_keys=keys,
                page_size=args.page_size,
                latency=args.latency_ms / 1000.0,
                tls=issuer.server_cert_paths if args.spycloud_tls else None,
            )
        )
        info = {
            'spycloud_url': sim.url,
            'jwks_host': issuer.jwks_host,
            'ca_pem_path': issuer.ca_pem_path,
            'api_key': keys[0],
            'state_dir': issuer.state_dir,
            **_xdr(args, stack),
        }
        print(json.dumps(info), flush=True)
        while not stop.wait(0.2):
            pass
    return 0


if __name__ == '__main__':
    sys.exit(main())
