"""The signing keys of a JWKS host: fetched on time and under a size cap, cached, refreshed rarely.

A stream of forged tokens must not make the relay hammer XDR: keys are cached per host with a
TTL, and a token naming an unknown ``kid`` triggers at most one refresh per interval. The host
itself has been checked against the allow-list (api/auth.py) before anything here runs.
"""

import functools
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jwt
import requests
from cachetools import TTLCache
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.poolmanager import PoolManager

from spycloud_relay.bounded_read import BoundedReadError, read_bounded
from spycloud_relay.config import Settings
from spycloud_relay.errors import AuthorizationError
from spycloud_relay.metrics import cache_lookup

if TYPE_CHECKING:  # what urllib3's pools make (it imports the protocol the same way)
    from urllib3._base_connection import BaseHTTPConnection

KID_NOT_FOUND = 'kid from JWT header not found in API response'
WRONG_JWKS_HOST = (
    'Wrong jwks_host in JWT payload. Make sure domain follows '
    'the visibility.<region>.cisco.com structure'
)

ALGORITHM = 'RS256'
MAX_JWKS_BYTES = 512 * 1024
# Small chunks: the cap is checked on decoded bytes, so a compressed body cannot inflate far
# past it before the check.
CHUNK_BYTES = 16 * 1024


class FetchWatchdog:
    """Shuts down the sockets of one fetch once ``seconds`` have passed, until it ends.

    requests' timeout bounds each socket read, not the exchange: a host that sends a byte a
    second (in the TLS handshake, the headers or the body) would hold the fetch, and the
    host's lock, for as long as it likes. The fetch's connections register here (see
    ``jwks_session``), and the watchdog wakes whatever is blocked on them at the deadline.
    """

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._connections: list[BaseHTTPConnection] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self.expired = False
        self._thread = threading.Thread(target=self._run, name='jwks-watchdog', daemon=True)

    def watch(self, connection: 'BaseHTTPConnection') -> None:
        """Called by the fetch's pools for every connection they make."""
        with self._lock:
            self._connections.append(connection)

    def _run(self) -> None:
        if self._done.wait(self._seconds):
            return
        self.expired = True
        # Repeat until the fetch ends: a socket being wrapped in TLS at the first attempt is
        # replaced by its TLS socket a moment later.
        while True:
            self._shut_down_all()
            if self._done.wait(0.05):
                return

    def _shut_down_all(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            sock = getattr(connection, 'sock', None)
            if sock is not None:
                try:
                    # socket.socket's shutdown, not SSLSocket's: it must not tear the TLS state
                    # down under the thread reading from it, only wake that thread.
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except (OSError, ValueError):
                    pass

    def __enter__(self) -> 'FetchWatchdog':
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()


class _WatchedPool(HTTPConnectionPool):
    """A connection pool that hands every connection it makes to its fetch's watchdog."""

    def __init__(self, *args: Any, watchdog: FetchWatchdog, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watchdog = watchdog

    def _new_conn(self) -> 'BaseHTTPConnection':
        connection = super()._new_conn()
        self._watchdog.watch(connection)
        return connection


class _WatchedHTTPPool(_WatchedPool):
    pass


# mypy reads _WatchedPool._new_conn's return (BaseHTTPConnection) as this class's, but its
# super() is HTTPSConnectionPool's: what it hands on is the BaseHTTPSConnection that one made.
class _WatchedHTTPSPool(_WatchedPool, HTTPSConnectionPool):  # type: ignore[misc]
    pass


class _WatchedAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections (direct, or through an HTTP proxy) one watchdog sees."""

    def __init__(self, watchdog: FetchWatchdog, **kwargs: Any) -> None:
        self._pools: dict[str, Callable[..., HTTPConnectionPool]] = {
            'http': functools.partial(_WatchedHTTPPool, watchdog=watchdog),
            'https': functools.partial(_WatchedHTTPSPool, watchdog=watchdog),
        }
        super().__init__(**kwargs)  # builds the pool manager, so the pools come first

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        # requests' stubs say Any: a ProxyManager, or a SOCKSProxyManager (both PoolManagers).
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith('socks'):
            # urllib3 types the table as classes, but only calls its entries: a partial serves.
            manager.pool_classes_by_scheme = self._pools  # type: ignore[assignment]
        return manager


def jwks_session(watchdog: FetchWatchdog) -> requests.Session:
    """A session for one fetch: nothing is reused, so every connection it makes is watched."""
    session = requests.Session()
    adapter = _WatchedAdapter(watchdog, max_retries=0)
    session.mount('https://', adapter)
    session.mount('http://', adapter)
    return session


SessionFactory = Callable[[FetchWatchdog], requests.Session]


class KeySet:
    """The RSA keys one JWKS host serves, cached with a TTL, refreshed on unknown kids."""

    def __init__(
        self,
        settings: Settings,
        session_factory: SessionFactory = jwks_session,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` is what the key sets' TTL counts on (a test moves its own)."""
        self._settings = settings
        self._session_factory = session_factory
        self._keys: TTLCache[str, dict[str, jwt.PyJWK]] = TTLCache(
            maxsize=64, ttl=settings.jwks_cache_ttl_s, timer=clock
        )
        self._fetched_at: dict[str, float] = {}
        self._failed_at: dict[str, float] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def key(self, host: str, kid: str) -> jwt.PyJWK:
        """The key ``kid`` of ``host``; raises AuthorizationError when there is none."""
        waiting_since = time.monotonic()
        keys = self._cached(host)
        if keys is not None and kid in keys:
            cache_lookup('jwks', hits=1)
            return keys[kid]  # no wait behind a refresh another request's unknown kid started
        cache_lookup('jwks', misses=1)
        with self._lock(host):
            keys = self._cached(host)
            if keys is None:
                if self._failed_at.get(host, float('-inf')) >= waiting_since:
                    # The fetch this request waited for has just failed: failing with it keeps
                    # a queue of requests from trying a dead host one timeout after another.
                    raise AuthorizationError(WRONG_JWKS_HOST)
                keys = self._refresh(host)
            elif kid not in keys and self._may_refresh(host):
                keys = self._refresh(host)
        if kid not in keys:
            raise AuthorizationError(KID_NOT_FOUND)
        return keys[kid]

    def _cached(self, host: str) -> dict[str, jwt.PyJWK] | None:
        with self._guard:
            return self._keys.get(host)

    def _lock(self, host: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(host, threading.Lock())

    def _may_refresh(self, host: str) -> bool:
        last = self._fetched_at.get(host, float('-inf'))
        return time.monotonic() - last >= self._settings.jwks_refresh_min_interval_s

    def _refresh(self, host: str) -> dict[str, jwt.PyJWK]:
        self._fetched_at[host] = time.monotonic()
        try:
            keys = parse_jwks(self._download(host))
        except AuthorizationError:
            self._failed_at[host] = time.monotonic()
            raise
        with self._guard:
            self._keys[host] = keys
        return keys

    def _download(self, host: str) -> bytes:
        """GET the JWKS with no redirects, a size cap and an overall time cap."""
        timeout = self._settings.jwks_timeout_s
        deadline = time.monotonic() + timeout
        try:
            with (
                FetchWatchdog(timeout) as watchdog,
                self._session_factory(watchdog) as session,
                session.get(
                    f'https://{host}/.well-known/jwks',
                    timeout=timeout,
                    allow_redirects=False,
                    stream=True,
                    headers={'Accept': 'application/json', 'Connection': 'close'},
                ) as response,
            ):
                if response.status_code != 200:
                    raise AuthorizationError(WRONG_JWKS_HOST)
                body = read_bounded(
                    response.raw,
                    max_bytes=MAX_JWKS_BYTES,
                    expired=lambda: time.monotonic() > deadline,
                    chunk_bytes=CHUNK_BYTES,
                )
                if watchdog.expired:
                    raise AuthorizationError(WRONG_JWKS_HOST)  # cut short: not the whole body
                return body
        except (BoundedReadError, requests.RequestException, Urllib3Error, OSError):
            raise AuthorizationError(WRONG_JWKS_HOST) from None


def parse_jwks(body: bytes) -> dict[str, jwt.PyJWK]:
    """kid → PyJWK for every usable RSA key with a string kid; a document with none is
    unusable (WRONG_JWKS_HOST), and so is one that is not a JWKS at all."""
    candidates = [
        dict(entry, alg=ALGORITHM)
        for entry in _entries(body)
        if isinstance(entry, dict)
        and entry.get('kty') == 'RSA'
        and isinstance(entry.get('kid'), str)
    ]
    try:
        # PyJWKSet skips the entries it cannot make a key of, and refuses a set left empty.
        # The alg is set above: the keys verify RS256 only, whatever alg an entry names.
        key_set = jwt.PyJWKSet(candidates)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        raise AuthorizationError(WRONG_JWKS_HOST) from None
    # Every candidate has a string kid; a repeated kid: the last one, as served.
    return {key.key_id: key for key in key_set if key.key_id is not None}


def _entries(body: bytes) -> list[object]:
    try:
        document = json.loads(body)
        entries = document['keys']
    except (ValueError, KeyError, TypeError, RecursionError):  # deep nesting: RecursionError
        raise AuthorizationError(WRONG_JWKS_HOST) from None
    if not isinstance(entries, list):
        raise AuthorizationError(WRONG_JWKS_HOST)
    return entries
