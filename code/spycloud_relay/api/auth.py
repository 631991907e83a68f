"""The configuration-token check: XDR signs the module's settings with RS256.

The token's ``jwks_host`` must be on the allow-list before anything is sent to it; the keys
then come from api/jwks.py, and the verified claims become the request's ModuleSettings.
"""

from typing import Any

import jwt

from spycloud_relay.api.jwks import ALGORITHM, KID_NOT_FOUND, WRONG_JWKS_HOST, KeySet
from spycloud_relay.api.module_settings import ModuleSettings
from spycloud_relay.config import Settings
from spycloud_relay.errors import AuthorizationError

NO_AUTH_HEADER = 'Authorization header is missing'
WRONG_AUTH_TYPE = 'Wrong authorization type'
WRONG_PAYLOAD_STRUCTURE = 'Wrong JWT payload structure'
WRONG_JWT_STRUCTURE = 'Wrong JWT structure'
WRONG_AUDIENCE = 'Wrong configuration-token-audience'
WRONG_KEY = (
    'Failed to decode JWT with provided key. '
    'Make sure domain in custom_jwks_host corresponds '
    'to your SecureX instance region.'
)
JWKS_HOST_MISSING = (
    'jwks_host is missing in JWT payload. Make sure '
    'custom_jwks_host field is present in module_type'
)
TOKEN_EXPIRED = 'The token has expired'
TOKEN_NOT_YET_VALID = 'The token is not yet valid'

MAX_TOKEN_BYTES = 16 * 1024

# What a verified token's failure means to the caller; the first match in this order wins.
_DECODE_ERRORS = (
    (jwt.InvalidAudienceError, WRONG_AUDIENCE),
    (jwt.MissingRequiredClaimError, WRONG_AUDIENCE),
    (jwt.ExpiredSignatureError, TOKEN_EXPIRED),
    (jwt.ImmatureSignatureError, TOKEN_NOT_YET_VALID),
    (jwt.PyJWTError, WRONG_KEY),
)


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (the scheme in any case)."""
    if not header:
        raise AuthorizationError(NO_AUTH_HEADER)
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != 'bearer':
        raise AuthorizationError(WRONG_AUTH_TYPE)
    return parts[1]


class TokenVerifier:
    """Turns an Authorization header into ModuleSettings, or raises AuthorizationError."""

    def __init__(self, settings: Settings, key_set: KeySet | None = None) -> None:
        self._settings = settings
        self._allowed_hosts = frozenset(settings.allowed_jwks_hosts)
        self._key_set = key_set or KeySet(settings)

    def module_settings(
        self, authorization_header: str | None, request_root: str
    ) -> ModuleSettings:
        """The settings of this request's module instance, from its verified token."""
        claims = self.claims(authorization_header, request_root)
        try:
            return ModuleSettings.from_claims(claims)
        except KeyError:
            raise AuthorizationError(WRONG_PAYLOAD_STRUCTURE) from None

    def claims(self, authorization_header: str | None, request_root: str) -> dict[str, Any]:
        """The token's claims once its signature, times and audience are checked.

        The expected audience is JWT_AUDIENCE, or else the URL this request reached.
        """
        token = bearer_token(authorization_header)
        header, unverified = _unverified(token)
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
        except jwt.PyJWTError as error:
            raise AuthorizationError(_reason(error)) from None

    def _allowed_host(self, value: object) -> str:
        """The allow-list entry the token's ``jwks_host`` names exactly (case aside), or an
        error: no parsing, so no userinfo, path, port or look-alike can lead anywhere else."""
        if not value:
            raise AuthorizationError(JWKS_HOST_MISSING)
        # ASCII first: str.lower() maps a few non-ASCII letters (the Kelvin sign) to ASCII ones.
        if (
            not isinstance(value, str)
            or not value.isascii()
            or value.lower() not in self._allowed_hosts
        ):
            raise AuthorizationError(WRONG_JWKS_HOST)
        return value.lower()


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, read before any key is known: only to find the host and the kid."""
    if len(token) > MAX_TOKEN_BYTES:
        raise AuthorizationError(WRONG_JWT_STRUCTURE)
    try:
        return (
            jwt.get_unverified_header(token),
            jwt.decode(token, options={'verify_signature': False}),
        )
    except jwt.PyJWTError:
        raise AuthorizationError(WRONG_JWT_STRUCTURE) from None


def _reason(error: jwt.PyJWTError) -> str:
    return next(reason for kind, reason in _DECODE_ERRORS if isinstance(error, kind))
