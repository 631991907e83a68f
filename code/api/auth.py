"""The configuration-token check: XDR signs the module's settings with RS256.

Unlike Cisco's relays, the ``jwks_host`` a token names must be on an
allow-list before anything is sent to it, and the signing keys are cached
(with at most one refresh per interval when a token names an unknown ``kid``),
so a stream of forged tokens cannot make the relay fetch from anywhere, or
hammer XDR.
"""
import json
import threading
import time

import jwt
import requests
from cachetools import TTLCache

from api.errors import AuthorizationError
from api.module_settings import ModuleSettings

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


class KeySet:
    """The RSA keys one JWKS host serves, cached with a TTL, refreshed on unknown kids."""

    def __init__(self, settings, session=None):
        self._settings = settings
        self._session = session or requests.Session()
        self._keys = TTLCache(maxsize=64, ttl=settings.jwks_cache_ttl_s)
        self._fetched_at = {}
        self._locks = {}
        self._guard = threading.Lock()

    def key(self, host, kid):
        with self._lock(host):
            keys = self._keys.get(host)
            if keys is None:
                keys = self._refresh(host)
            elif kid not in keys and self._may_refresh(host):
                keys = self._refresh(host)
        if kid not in keys:
            raise AuthorizationError(KID_NOT_FOUND)
        return keys[kid]

    def _lock(self, host):
        with self._guard:
            return self._locks.setdefault(host, threading.Lock())

    def _may_refresh(self, host):
        last = self._fetched_at.get(host, float('-inf'))
        return time.monotonic() - last >= self._settings.jwks_refresh_min_interval_s

    def _refresh(self, host):
        self._fetched_at[host] = time.monotonic()
        keys = parse_jwks(self._download(host))
        self._keys[host] = keys
        return keys

    def _download(self, host):
        """GET the JWKS with no redirects, a size cap and an overall time cap."""
        timeout = self._settings.jwks_timeout_s
        deadline = time.monotonic() + timeout
        try:
            with self._session.get(f'https://{host}/.well-known/jwks', timeout=timeout,
                                   allow_redirects=False, stream=True,
                                   headers={'Accept': 'application/json'}) as response:
                if response.status_code != 200:
                    raise AuthorizationError(WRONG_JWKS_HOST)
                body = bytearray()
                for chunk in response.iter_content(chunk_size=16384):
                    body.extend(chunk)
                    if len(body) > MAX_JWKS_BYTES or time.monotonic() > deadline:
                        raise AuthorizationError(WRONG_JWKS_HOST)
                return bytes(body)
        except requests.RequestException:
            raise AuthorizationError(WRONG_JWKS_HOST) from None


def parse_jwks(body):
    """kid → PyJWK for every usable RSA key; a document with none is unusable."""
    try:
        document = json.loads(body)
        entries = document['keys']
        if not isinstance(entries, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
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

    def claims(self, authorization_header, request_root):
        token = bearer_token(authorization_header)
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthorizationError(WRONG_JWT_STRUCTURE)
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={'verify_signature': False})
        except jwt.PyJWTError:
            raise AuthorizationError(WRONG_JWT_STRUCTURE) from None

        host = unverified.get('jwks_host')
        if not host:
            raise AuthorizationError(JWKS_HOST_MISSING)
        if not isinstance(host, str) or host.lower() not in self._allowed_hosts:
            raise AuthorizationError(WRONG_JWKS_HOST)
        if header.get('alg') != ALGORITHM:
            raise AuthorizationError(WRONG_KEY)
        kid = header.get('kid')
        if not isinstance(kid, str):
            raise AuthorizationError(KID_NOT_FOUND)

        key = self._key_set.key(host.lower(), kid)
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
