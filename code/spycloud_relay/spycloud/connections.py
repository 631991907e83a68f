"""The one keep-alive connection pool to SpyCloud's host, set up as requests would for its URL.

Every call goes to one host, so the pool is taken from urllib3's manager once, with the CA
bundle and the proxy the environment names; its connections answer urllib3's "still open?"
with a check that does not yield under gevent (``_QuietCheck``). Nothing here knows of a
lookup, a retry or an error: spycloud/transport.py sends its calls through this pool.
"""

import os
import select
import socket
from typing import Any

import requests.utils
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

from spycloud_relay.config import Settings


class _QuietCheck:
    """A pooled connection's "still open?" check, made with a zero-timeout ``select``.

    urllib3 asks it of every connection it takes from the pool. Its own check polls, and under
    the gevent worker a poll with a zero timeout still goes round the event loop, so each call
    of a request yielded before sending: the calls left in a burst at the end, and their answers
    came back bunched and queued. select() answers from the kernel at once (gevent's too), but
    cannot take a descriptor above FD_SETSIZE, where the poll is used."""

    sock: socket.socket | None

    @property
    def is_connected(self) -> bool:
        if self.sock is None:
            return False
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (ValueError, OSError):
            # The connection class's own check (this is a mixin: mypy sees object after it).
            connected: bool = super().is_connected  # type: ignore[misc]
            return connected
        return not readable  # an idle connection that is readable was closed by the server


class _Connection(_QuietCheck, HTTPConnection):
    pass


class _TLSConnection(_QuietCheck, HTTPSConnection):
    pass


def connection_pool(settings: Settings) -> tuple[urllib3.HTTPConnectionPool, str]:
    """The keep-alive pool to SpyCloud's host, with the CA bundle and proxy requests would use
    for its URL (REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE, HTTPS_PROXY and NO_PROXY), read once,
    and what precedes a call's path on its request line: the base path, or the whole base URL
    for a plain-HTTP proxy, which wants the absolute form.

    Every call goes to this one host, so the pool is taken from the manager once: a call then
    skips the manager's parsing of its URL and its lookup of the pool."""
    url = settings.spycloud_api_url
    bundle = (
        os.environ.get('REQUESTS_CA_BUNDLE')
        or os.environ.get('CURL_CA_BUNDLE')
        or requests.utils.DEFAULT_CA_BUNDLE_PATH
    )
    ca = {'ca_cert_dir': bundle} if os.path.isdir(bundle) else {'ca_certs': bundle}
    options: dict[str, Any] = dict(
        maxsize=2 * settings.spycloud_max_workers + 8, cert_reqs='CERT_REQUIRED', **ca
    )
    proxy = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
    manager = urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
    target = urllib3.util.parse_url(url)
    absolute = bool(proxy) and target.scheme == 'http'  # https goes through a CONNECT tunnel
    pool = manager.connection_from_url(url)
    tls = isinstance(pool, urllib3.HTTPSConnectionPool)
    pool.ConnectionCls = _TLSConnection if tls else _Connection
    return pool, url if absolute else (target.path or '/')
