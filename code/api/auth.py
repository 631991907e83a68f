"""The configuration-token check: XDR signs the module's settings with RS256.

Unlike Cisco's relays, the ``jwks_host`` a token names must be on an
allow-list before anything is sent to it, and the signing keys are cached
(with at most one refresh per interval when a token names an unknown ``kid``),
so a stream of forged tokens cannot make the relay fetch from anywhere, or
hammer XDR.
"""
import json
import socket
import threading
import time

import jwt
import requests
from cachetools import TTLCache
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error

from api.errors import AuthorizationError
from api.module_settings import ModuleSettings
from metrics import cache_lookup

NO_AUTH_HEADER = 'Authorization header is missing'
WRONG_AUTH_TYPE = 'Wrong authorization type'
WRONG_PAYLOAD_STRUCTURE = 'Wrong JWT payload structure'
WRONG_JWT_STRUCTURE = 'Wrong JWT structure'
WRONG_AUDIENCE = 'Wrong configuration-token-audience'
KID_NOT_FOUND = 'kid from JWT header not found in API response'
WRONG_KEY = ('Failed to decode JWT with provided key. '
             'Make sure domain in custom_jwks_host corresponds '
             'to your SecureX instance region.')
JWKS_HOST_MISSING = ('jwks_host is missing in JWT payload. Make sure '
                     'custom_jwks_host field is present in module_type')
WRONG_JWKS_HOST = ('Wrong jwks_host in JWT payload. Make sure domain follows '
                   'the visibility.<region>.cisco.com structure')
TOKEN_EXPIRED = 'The token has expired'
TOKEN_NOT_YET_VALID = 'The token is not yet valid'

ALGORITHM = 'RS256'
MAX_TOKEN_BYTES = 16 * 1024
MAX_JWKS_BYTES = 512 * 1024


def bearer_token(header):
    """The token of an ``Authorization: Bearer <token>`` header."""
    if not header:
        raise AuthorizationError(NO_AUTH_HEADER)
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != 'bearer':
        raise AuthorizationError(WRONG_AUTH_TYPE)
    return parts[1]


# A JWKS fetch must end on time whatever the server does: requests' timeout bounds each socket
# read, not the exchange, so a host that sends a byte a second (in the TLS handshake, the
# headers or the body) would hold the request, and the host's lock, for as long as it likes.
# Each fetch therefore runs under a watchdog that shuts its connections down at the deadline;
# the connections made by the fetching thread register themselves through this thread-local.
_fetch = threading.local()


class _Watchdog:
    """Shuts down the sockets of one fetch once ``seconds`` have passed, until it ends."""

    def __init__(self, seconds):
        self._seconds = seconds
        self._connections = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self.expired = False
        self._thread = threading.Thread(target=self._run, name='jwks-watchdog', daemon=True)

    def watch(self, connection):
        with self._lock:
            self._connections.append(connection)

    def _run(self):
        if self._done.wait(self._seconds):
            return
        self.expired = True
        # Repeat until the fetch ends: a socket being wrapped in TLS at the first attempt is
        # replaced by its TLS socket a moment later.
        while True:
            with self._lock:
                connections = list(self._connections)
            for connection in connections:
                sock = getattr(connection, 'sock', None)
                if sock is not None:
                    try:
                        # socket.socket's shutdown, not SSLSocket's: it must not tear the TLS
                        # state down under the thread reading from it, only wake that thread.
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)
                    except (OSError, ValueError):
                        pass
            if self._done.wait(0.05):
                return

    def __enter__(self):
        _fetch.watchdog = self
        self._thread.start()
        return self

    def __exit__(self, *exc):
        _fetch.watchdog = None
        self._done.set()


def _watched(connection_class):
    class Watched(connection_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            watchdog = getattr(_fetch, 'watchdog', None)
            if watchdog is not None:
                watchdog.watch(self)

    Watched.__name__ = f'Watched{connection_class.__name__}'
    return Watched


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _watched(HTTPConnection)


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _watched(HTTPSConnection)


_WATCHED_POOLS = {'http': _WatchedHTTPPool, 'https': _WatchedHTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections (direct, or through an HTTP proxy) can be watched."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith('socks'):
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


def jwks_session():
    """A session for one fetch: nothing is reused, so every connection it makes is watched."""
    session = requests.Session()
    adapter = _WatchedAdapter(max_retries=0)
    session.mount('https://', adapter)
    session.mount('http://', adapter)
    return session


class KeySet:
    """The RSA keys one JWKS host serves, cached with a TTL, refreshed on unknown kids."""

    def __init__(self, settings, session_factory=jwks_session):
        self._settings = settings
        self._session_factory = session_factory
        self._keys = TTLCache(maxsize=64, ttl=settings.jwks_cache_ttl_s)
        self._fetched_at = {}
        self._failed_at = {}
        self._locks = {}
        self._guard = threading.Lock()

    def key(self, host, kid):
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

    def _cached(self, host):
        with self._guard:
            return self._keys.get(host)

    def _lock(self, host):
        with self._guard:
            return self._locks.setdefault(host, threading.Lock())

    def _may_refresh(self, host):
        last = self._fetched_at.get(host, float('-inf'))
        return time.monotonic() - last >= self._settings.jwks_refresh_min_interval_s

    def _refresh(self, host):
        self._fetched_at[host] = time.monotonic()
        try:
            keys = parse_jwks(self._download(host))
        except AuthorizationError:
            self._failed_at[host] = time.monotonic()
            raise
        with self._guard:
            self._keys[host] = keys
        return keys

    def _download(self, host):
        """GET the JWKS with no redirects, a size cap and an overall time cap."""
        timeout = self._settings.jwks_timeout_s
        deadline = time.monotonic() + timeout
        session = self._session_factory()
        try:
            with _Watchdog(timeout) as watchdog, \
                    session.get(f'https://{host}/.well-known/jwks', timeout=timeout,
                                allow_redirects=False, stream=True,
                                headers={'Accept': 'application/json',
                                         'Connection': 'close'}) as response:
                if response.status_code != 200:
                    raise AuthorizationError(WRONG_JWKS_HOST)
                body = bytearray()
                # Small chunks: the size cap is checked on decoded bytes, so a compressed
                # body cannot inflate far past it before the check.
                for chunk in response.iter_content(chunk_size=16384):
                    body.extend(chunk)
                    if len(body) > MAX_JWKS_BYTES or time.monotonic() > deadline:
                        raise AuthorizationError(WRONG_JWKS_HOST)
                if watchdog.expired:
                    raise AuthorizationError(WRONG_JWKS_HOST)  # cut short: not the whole body
                return bytes(body)
        except (requests.RequestException, Urllib3Error, OSError):
            raise AuthorizationError(WRONG_JWKS_HOST) from None
        finally:
            session.close()


def parse_jwks(body):
    """kid → PyJWK for every usable RSA key; a document with none is unusable."""
    try:
        document = json.loads(body)
        entries = document['keys']
        if not isinstance(entries, list):
            raise TypeError
    except (ValueError, KeyError, TypeError, RecursionError):  # deep nesting: RecursionError
        raise AuthorizationError(WRONG_JWKS_HOST) from None
    keys = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get('kty') != 'RSA':
            continue
        kid = entry.get('kid')
        if not isinstance(kid, str):
            continue
        try:
            keys[kid] = jwt.PyJWK(entry, algorithm=ALGORITHM)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
    if not keys:
        raise AuthorizationError(WRONG_JWKS_HOST)
    return keys


class TokenVerifier:
    """Turns an Authorization header into ModuleSettings, or raises AuthorizationError."""

    def __init__(self, settings, key_set=None):
        self._settings = settings
        self._allowed_hosts = frozenset(settings.allowed_jwks_hosts)
        self._key_set = key_set or KeySet(settings)

    def module_settings(self, authorization_header, request_root):
        claims = self.claims(authorization_header, request_root)
        try:
            return ModuleSettings.from_claims(claims)
        except KeyError:
            raise AuthorizationError(WRONG_PAYLOAD_STRUCTURE) from None

    def _allowed_host(self, value):
        """The allow-list entry the token's ``jwks_host`` names exactly (case aside), or an
        error: no parsing, so no userinfo, path, port or look-alike can lead anywhere else."""
        if not value:
            raise AuthorizationError(JWKS_HOST_MISSING)
        # ASCII first: str.lower() maps a few non-ASCII letters (the Kelvin sign) to ASCII ones.
        if not isinstance(value, str) or not value.isascii() \
                or value.lower() not in self._allowed_hosts:
            raise AuthorizationError(WRONG_JWKS_HOST)
        return value.lower()

    def claims(self, authorization_header, request_root):
        token = bearer_token(authorization_header)
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthorizationError(WRONG_JWT_STRUCTURE)
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={'verify_signature': False})
        except jwt.PyJWTError:
            raise AuthorizationError(WRONG_JWT_STRUCTURE) from None

        host = self._allowed_host(unverified.get('jwks_host'))
        if header.get('alg') != ALGORITHM:
            raise AuthorizationError(WRONG_KEY)
        kid = header.get('kid')
        if not isinstance(kid, str):
            raise AuthorizationError(KID_NOT_FOUND)

        key = self._key_set.key(host, kid)
        audience = self._settings.jwt_audience or request_root.rstrip('/')
        try:
            return jwt.decode(token, key=key.key, algorithms=[ALGORITHM], audience=audience)
        except jwt.InvalidAudienceError:
            raise AuthorizationError(WRONG_AUDIENCE) from None
        except jwt.MissingRequiredClaimError:
            raise AuthorizationError(WRONG_AUDIENCE) from None
        except jwt.ExpiredSignatureError:
            raise AuthorizationError(TOKEN_EXPIRED) from None
        except jwt.ImmatureSignatureError:
            raise AuthorizationError(TOKEN_NOT_YET_VALID) from None
        except jwt.PyJWTError:
            raise AuthorizationError(WRONG_KEY) from None
