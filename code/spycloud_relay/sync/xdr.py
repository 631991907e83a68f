"""The sync's XDR client: a token by client credentials, and CTIA's bundle import.

XDR is not SpyCloud: another host, a bearer token that expires (renewed a minute before, and
once on a 401), a rate shared by the whole organisation (429 with Retry-After), and an import
that is idempotent thanks to the entities' external ids, so a 5xx or a lost connection is
simply sent again. The pool, its CA bundle and its proxy are set up as spycloud/connections.py
does for SpyCloud. No message or log line holds the client password or the token.
"""

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import urllib3
from urllib3 import exceptions as urllib3_exceptions

from spycloud_relay.config import ConfigError, Settings
from spycloud_relay.errors import RelayError
from spycloud_relay.spycloud.connections import connection_pool
from spycloud_relay.spycloud.transport import USER_AGENT

log = logging.getLogger(__name__)

TOKEN_PATH = 'iroh/oauth2/token'
IMPORT_PATH = 'iroh/private-intel/bundle/import'
DEFAULT_PREFIX = 'spycloud-relay'
DEFAULT_TOKEN_TTL_S = 600.0  # IROH's, when an answer leaves expires_in out
RENEW_BEFORE_S = 60.0  # a token this close to its end is renewed before a call
RETRIES = 3  # a 5xx or a connection error, sent again this many times
THROTTLED_RETRIES = 5  # 429s waited out before giving up
MAX_WAIT_S = 60.0  # the longest Retry-After obeyed
REASON_CHARS = 200  # of XDR's own words kept in an error message

_CODES = {
    400: 'xdr bad request',
    401: 'xdr unauthorized',
    403: 'xdr forbidden',
    404: 'xdr not found',
    413: 'xdr bad request',
    429: 'xdr too many requests',
}


class XdrError(RelayError):
    """XDR refused or could not be reached; the message names why, never a secret."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ImportResult:
    """One entity's outcome in a bundle import: ``result`` is created, exists or error."""

    type: str
    original_id: str | None
    id: str | None
    result: str
    external_ids: tuple[str, ...]
    error: str | None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> 'ImportResult':
        ids = doc.get('external_ids')
        error = ': '.join(str(doc[k]) for k in ('error', 'msg') if doc.get(k) is not None)
        return cls(
            type=str(doc.get('type', '')),
            original_id=_text(doc.get('original_id')),
            id=_text(doc.get('id')),
            result=str(doc.get('result', '')),
            external_ids=tuple(str(i) for i in ids) if isinstance(ids, list) else (),
            error=error[:REASON_CHARS] or None,
        )


@dataclass(frozen=True)
class _Token:
    value: str
    renew_at: float  # on the client's clock


class XdrClient:
    """Imports CTIM bundles into one XDR organisation with one API client's credentials."""

    def __init__(
        self,
        settings: Settings,
        api_url: str,
        client_id: str,
        client_password: str,
        external_id_prefix: str = DEFAULT_PREFIX,
        *,
        backoff_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not api_url.strip().startswith(('http://', 'https://')):
            raise ConfigError('XDR_API_URL must be an http(s) URL')
        self._pool, self._prefix = connection_pool(replace(settings, spycloud_api_url=api_url))
        self._timeout = urllib3.Timeout(
            connect=settings.connect_timeout_s, read=settings.read_timeout_s
        )
        self._credentials = (client_id, client_password)
        self._query = urlencode({'external-key-prefixes': external_id_prefix})
        self._backoff_s, self._clock = backoff_s, clock
        self._token: _Token | None = None
        self.requests_made = 0

    def __enter__(self) -> 'XdrClient':
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._pool.close()

    def import_bundle(self, bundle: Mapping[str, Any]) -> list[ImportResult]:
        """Each entity's result; raises XdrError when XDR refuses the bundle as a whole."""
        url = f'{self._prefix}{IMPORT_PATH}?{self._query}'
        status, content = self._authorized(url, json.dumps(bundle).encode('utf-8'))
        if status != 200:
            raise self._refusal(status, content, 'the bundle import')
        return _results(content)

    # -- the token ---------------------------------------------------------------------------

    def _authorized(self, url: str, body: bytes) -> tuple[int, bytes]:
        """A POST with the current token; on a 401 once more with a new one."""
        for _ in range(2):
            headers = {
                'Authorization': f'Bearer {self._current_token()}',
                'Content-Type': 'application/json',
            }
            status, content = self._send(url, body, headers)
            if status != 401:
                return status, content
            self._token = None  # expired or revoked before its time
        raise XdrError(
            'xdr unauthorized',
            'XDR refused a new token too (HTTP 401): check that the API client still exists '
            'and has the private-intel scope',
        )

    def _current_token(self) -> str:
        if self._token is None or self._clock() >= self._token.renew_at:
            self._token = self._new_token()
        return self._token.value

    def _new_token(self) -> _Token:
        started = self._clock()
        headers = urllib3.make_headers(basic_auth=':'.join(self._credentials))
        headers['Content-Type'] = 'application/x-www-form-urlencoded'
        body = b'grant_type=client_credentials'
        status, content = self._send(f'{self._prefix}{TOKEN_PATH}', body, headers)
        if status in (400, 401, 403):
            raise XdrError(
                'xdr unauthorized',
                f'XDR refused the API client (HTTP {status}): check XDR_CLIENT_ID and '
                'XDR_CLIENT_PASSWORD',
            )
        if status != 200:
            raise self._refusal(status, content, 'the token request')
        doc = _json_object(content)
        value = doc.get('access_token')
        if not isinstance(value, str) or not value:
            raise XdrError('xdr unknown', 'XDR answered the token request without a token')
        ttl = _seconds(doc.get('expires_in')) or DEFAULT_TOKEN_TTL_S
        return _Token(value, started + ttl - min(RENEW_BEFORE_S, ttl / 2))

    # -- one request, retried ----------------------------------------------------------------

    def _send(self, url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """(status, body) of a POST, after the retries a 429, a 5xx or a lost connection get."""
        failures = throttled = 0
        while True:
            try:
                status, retry_after, content = self._once(url, body, headers)
            except (urllib3_exceptions.HTTPError, OSError) as error:
                failures += 1
                if failures > RETRIES:
                    raise XdrError(
                        'xdr unreachable', f'XDR could not be reached ({type(error).__name__})'
                    ) from None
                self._wait(self._backoff(failures), type(error).__name__)
                continue
            if status == 429 and throttled < THROTTLED_RETRIES:
                throttled += 1
                self._wait(retry_after or self._backoff(throttled), 'HTTP 429')
            elif status >= 500 and failures < RETRIES:
                failures += 1
                self._wait(self._backoff(failures), f'HTTP {status}')
            else:
                return status, content

    def _once(
        self, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, float | None, bytes]:
        self.requests_made += 1
        response = self._pool.urlopen(
            'POST',
            url,
            body=body,
            headers={'Accept': 'application/json', 'User-Agent': USER_AGENT, **headers},
            retries=False,
            redirect=False,
            assert_same_host=False,
            timeout=self._timeout,
        )
        retry_after = _seconds(response.headers.get('Retry-After'))
        return response.status, retry_after and min(retry_after, MAX_WAIT_S), response.data

    def _backoff(self, attempt: int) -> float:
        return float(min(self._backoff_s * 2 ** (attempt - 1), MAX_WAIT_S))

    @staticmethod
    def _wait(seconds: float, why: str) -> None:
        log.warning('XDR answered %s; sending again in %.2f s', why, seconds)
        time.sleep(seconds)

    # -- failures ----------------------------------------------------------------------------

    def _refusal(self, status: int, content: bytes, what: str) -> XdrError:
        code = _CODES.get(status, 'xdr unavailable' if status >= 500 else 'xdr error')
        reason = self._scrub(_reason(content))
        message = f'XDR refused {what} (HTTP {status})' + (f': {reason}' if reason else '')
        return XdrError(code, message)

    def _scrub(self, text: str) -> str:
        """XDR's own words without the password or the token, should it ever echo them."""
        for secret in (self._credentials[1], self._token.value if self._token else ''):
            if secret:
                text = text.replace(secret, '***')
        return text


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _seconds(value: object) -> float | None:
    """A positive finite number of seconds (a header's text or a JSON number), else None."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if 0 < seconds < float('inf') else None


def _json_object(content: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(content)
    except (ValueError, RecursionError):
        raise XdrError('xdr unknown', 'XDR sent an answer that is not valid JSON') from None
    if not isinstance(doc, dict):
        raise XdrError('xdr unknown', 'XDR sent an answer of an unexpected shape')
    return doc


def _results(content: bytes) -> list[ImportResult]:
    items = _json_object(content).get('results')
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise XdrError('xdr unknown', 'XDR sent an import answer without its results')
    return [ImportResult.from_json(item) for item in items]


def _reason(content: bytes) -> str:
    """What XDR said of a refusal, in a few words."""
    try:
        doc = json.loads(content)
    except (ValueError, RecursionError):
        return ''
    if not isinstance(doc, dict):
        return ''
    words = [doc.get(k) for k in ('error', 'message', 'error_description', 'msg')]
    return ' '.join(w for w in words if isinstance(w, str))[:REASON_CHARS]
