"""HTTP to SpyCloud: one urllib3 pool per process, a Retry of its own for every call.

urllib3 takes ``retries=`` per request, so each call's Retry carries what bounds it (the
lookup's deadline, the rate limiter, the key's fingerprint) and nothing travels through
thread-locals. Retries follow urllib3's rules (exponential backoff with jitter, Retry-After
honoured) with two additions: a 429 for an exhausted monthly quota is final, and no retry is
started that would end past the lookup's deadline. Redirects are never followed: the key
header would go wherever they point.
"""

import json
import logging
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from contextlib import contextmanager
from functools import lru_cache
from urllib.parse import urlencode

import requests.utils
import urllib3
from urllib3 import exceptions as urllib3_exceptions
from urllib3.exceptions import InvalidHeader, MaxRetryError
from urllib3.util.retry import Retry

import state
from config import VERSION
from deadline import Deadline, DeadlineReached
from errors import (
    AuthorizationError,
    InternalServerError,
    NotFoundError,
    RelayError,
    TooManyRequestsError,
    UnknownError,
)
from metrics import LIMITER_WAIT_SECONDS, SPYCLOUD_CALLS, SPYCLOUD_RETRIES, endpoint_label
from spycloud.lookup import UNSENDABLE_KEY, Lookup

log = logging.getLogger(__name__)

USER_AGENT = f'SpyCloud-XDR-Relay/{VERSION}'
# A page of 1000 records is about half a megabyte; anything far larger is not SpyCloud's answer.
MAX_BODY_BYTES = 32 * 1024 * 1024
CHUNK_BYTES = 64 * 1024
QUOTA_ERROR_TYPE = 'LimitExceededException'
MAX_MESSAGE_CHARS = 300
KEY_PROBLEMS = ('invalid api key', 'invalid ip', 'api key')


def is_quota_exhausted(headers) -> bool:
    return QUOTA_ERROR_TYPE.lower() in headers.get('x-amzn-ErrorType', '').lower()


class QuotaExhausted(Exception):
    """The monthly quota's 429: final, never retried."""


class SpyCloudRetry(Retry):
    """urllib3's Retry for one call: bounded by its lookup's deadline, paced by the limiter."""

    def __init__(self, *args, lookup=None, limiter=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lookup, self.limiter = lookup, limiter

    @classmethod
    def from_settings(cls, settings) -> 'SpyCloudRetry':
        """GETs: retried on connection errors, one read error, 429 and 502/503/504."""
        return cls._with(
            settings,
            read=min(1, settings.spycloud_retries),
            methods={'GET'},
            statuses=(429, 502, 503, 504),
        )

    @classmethod
    def for_writes(cls, settings) -> 'SpyCloudRetry':
        """POST and DELETE are retried only where the first attempt cannot have landed: a
        connection that was never made, and API Gateway's throttling 429 (refused before the
        service saw it). A reset, a timeout or a 5xx after sending is final."""
        return cls._with(settings, read=0, methods={'POST', 'DELETE'}, statuses=(429,))

    @classmethod
    def _with(cls, settings, read, methods, statuses):
        retries, backoff = settings.spycloud_retries, settings.spycloud_backoff_s
        return cls(
            total=retries,
            connect=retries,
            read=read,
            status=retries,
            other=0,
            redirect=0,
            allowed_methods=frozenset(methods),
            status_forcelist=statuses,
            backoff_factor=backoff,
            backoff_jitter=backoff / 2,
            backoff_max=max(backoff * 8, 1.0),
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
        )

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        """Only the statuses this Retry lists. urllib3 also retries any allowed method on a
        413, 429 or 503 that carries Retry-After, which would send a write twice that may
        have landed."""
        return self._is_method_retryable(method) and status_code in (self.status_forcelist or ())

    def new(self, **kwargs) -> 'SpyCloudRetry':
        kwargs.setdefault('lookup', self.lookup)
        kwargs.setdefault('limiter', self.limiter)
        return super().new(**kwargs)

    def parse_retry_after(self, retry_after: str) -> float:
        """Seconds to wait: a positive number (``0.5`` included) or an HTTP date; anything
        else (``-1``, empty, text) is no advice, and the backoff applies instead of an error."""
        try:
            seconds = float(retry_after)
        except (TypeError, ValueError):
            try:
                return super().parse_retry_after(retry_after)
            except InvalidHeader:
                return 0.0
        return seconds if 0 < seconds < float('inf') else 0.0

    def increment(
        self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None
    ):
        if response is not None and response.status == 429 and is_quota_exhausted(response.headers):
            raise MaxRetryError(_pool, url, QuotaExhausted('monthly quota exhausted'))
        if (
            response is not None
            and response.status == 429
            and self.limiter is not None
            and self.lookup is not None
        ):
            # A throttling 429: the key's budget is cut, and paused for its Retry-After.
            self.limiter.throttled(self.lookup.fingerprint, self.get_retry_after(response))
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        if self.lookup is not None:
            pause = retry.get_retry_after(response) if response is not None else None
            pause = pause or retry.get_backoff_time()
            if pause >= self.lookup.deadline.remaining():
                raise MaxRetryError(_pool, url, error or DeadlineReached())
        return retry

    def sleep(self, response=None) -> None:
        super().sleep(response)
        if self.limiter is not None and self.lookup is not None:
            self.limiter.acquire(self.lookup.fingerprint, self.lookup.deadline)


class DeadlineTimeout(urllib3.Timeout):
    """A call's connect and read timeouts, each capped by what remains of the lookup's
    deadline at the moment urllib3 reads it: at every attempt, a retry's included (urllib3
    clones the Timeout for each), not once when the call starts."""

    def __init__(self, deadline: Deadline, connect: float, read: float) -> None:
        super().__init__(connect=connect, read=read)
        self.deadline = deadline

    def clone(self) -> 'DeadlineTimeout':
        return DeadlineTimeout(self.deadline, self._connect, self._read)  # type: ignore[arg-type]

    @property
    def connect_timeout(self) -> float:
        return self.deadline.cap(self._connect)  # type: ignore[arg-type]

    @property
    def read_timeout(self) -> float:
        return self.deadline.cap(self._read)  # type: ignore[arg-type]


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
            return super().is_connected  # type: ignore[misc]
        return not readable  # an idle connection that is readable was closed by the server


class _Connection(_QuietCheck, urllib3.connection.HTTPConnection):
    pass


class _TLSConnection(_QuietCheck, urllib3.connection.HTTPSConnection):
    pass


def connection_pool(settings) -> tuple[urllib3.HTTPConnectionPool, str]:
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
    options = dict(maxsize=2 * settings.spycloud_max_workers + 8, cert_reqs='CERT_REQUIRED', **ca)
    proxy = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
    manager = urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
    target = urllib3.util.parse_url(url)
    absolute = bool(proxy) and target.scheme == 'http'  # https goes through a CONNECT tunnel
    pool = manager.connection_from_url(url)
    tls = isinstance(pool, urllib3.HTTPSConnectionPool)
    pool.ConnectionCls = _TLSConnection if tls else _Connection
    return pool, url if absolute else (target.path or '/')


def upstream_message(response, content, api_key=None) -> str:
    """SpyCloud's own words for an error, trimmed, without the API key should it echo it."""
    message = ''
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict):
        for name in ('message', 'errorMessage', 'error'):
            if isinstance(body.get(name), str) and body[name].strip():
                message = body[name].strip()
                break
    message = message or response.reason or f'HTTP {response.status}'
    detail = response.headers.get('SpyCloud-Error', '').strip()
    if detail and detail.lower() not in message.lower():
        message = f'{message} ({detail})'
    return redact(' '.join(message.split()), api_key)[:MAX_MESSAGE_CHARS]


class Refused(AuthorizationError):
    """A 403 that is not about the key or the caller's IP: this selector is not for this key
    (SpyCloud searches only the identifiers on the customer's verified watchlist)."""


class BadRequest(Exception):
    """SpyCloud's 400: the relay reads it as 'no data' for the selector."""


def error_for(response, content, api_key=None) -> RelayError:
    """The RelayError for an answer that is not a 2xx."""
    status = response.status
    if 300 <= status < 400:
        return UnknownError(
            f'SpyCloud answered HTTP {status}, a redirect, which the relay does '
            'not follow (the API key would go along): check SPYCLOUD_API_URL.'
        )
    message = upstream_message(response, content, api_key)
    if status in (401, 403):
        detail = response.headers.get('SpyCloud-Error', '').lower()
        if status == 403 and not any(problem in detail for problem in KEY_PROBLEMS):
            return Refused(message)
        return AuthorizationError(message)
    if status == 404:
        return NotFoundError('The SpyCloud API answered 404 Not Found: check SPYCLOUD_API_URL.')
    if status == 429:
        if is_quota_exhausted(response.headers):
            return TooManyRequestsError(
                'The SpyCloud monthly quota of this API key is '
                'exhausted; SpyCloud support can raise it.'
            )
        return TooManyRequestsError(
            'Too many requests have been made to SpyCloud. Please, try again later.'
        )
    if status == 500:
        return InternalServerError(f'The SpyCloud internal error: {message}')
    return UnknownError(f'SpyCloud answered HTTP {status}: {message}')


class Transport:
    """GETs JSON from SpyCloud within a lookup's deadline, paced per key, mapped to RelayErrors."""

    def __init__(self, settings):
        self._host = settings.spycloud_api_url.split('/')[2]
        self._timeouts = (settings.connect_timeout_s, settings.read_timeout_s)
        self.limiter = state.limiter(settings)
        self._retry = SpyCloudRetry.from_settings(settings)
        self._write_retry = SpyCloudRetry.for_writes(settings)
        self._pool, self._prefix = connection_pool(settings)
        self._headers = {
            'Accept': 'application/json',
            'User-Agent': USER_AGENT,
            **urllib3.util.make_headers(accept_encoding=True),
        }
        self._active = 0
        self._active_lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        """Calls under way now: zero soon after every answer, or a thread was left busy."""
        return self._active

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _counted(self):
        with self._active_lock:
            self._active += 1
        try:
            yield
        finally:
            with self._active_lock:
                self._active -= 1

    def get(self, lookup: Lookup, path: str, params: Mapping[str, str] | None = None) -> dict:
        """The JSON object SpyCloud answers; raises RelayError, BadRequest or DeadlineReached."""
        return self.call(lookup, 'GET', path, params=params)[1]

    def call(
        self,
        lookup: Lookup,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: dict | None = None,
        expect: tuple = (),
    ) -> tuple:
        """(status, JSON object or None) for a 2xx or a status in ``expect`` (a watchlist's
        404 or 409 is an answer, not a failure); else raises as ``get`` does. A write is
        retried only where it cannot have landed: a connection never made, a throttling 429."""
        if not lookup.key_sendable:
            raise AuthorizationError(UNSENDABLE_KEY)
        lookup.deadline.check()
        self._pace(lookup)
        endpoint, started = endpoint_label(path), time.monotonic()
        response, content = self._exchange(lookup, method, path, params, body, endpoint)
        SPYCLOUD_CALLS.labels(endpoint, str(response.status)).inc()
        retries = len(response.retries.history) if response.retries is not None else 0
        if retries:
            SPYCLOUD_RETRIES.labels(endpoint).inc(retries)
            lookup.stats.add(retries=retries)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                '%s %s -> %s in %.0f ms (%d retries)',
                method,
                endpoint,
                response.status,
                (time.monotonic() - started) * 1000,
                retries,
            )
        if response.status in expect:
            return response.status, _json_or_none(content)
        if method != 'GET' and 200 <= response.status < 300:
            return response.status, _json_or_none(content)  # 201 or 204: the body is optional
        return response.status, self._body(response, content, lookup.api_key)

    def _pace(self, lookup):
        waited = self.limiter.acquire(lookup.fingerprint, lookup.deadline)
        LIMITER_WAIT_SECONDS.observe(waited)
        lookup.stats.add(spycloud_calls=1, limiter_wait_s=waited)

    def _exchange(self, lookup, method, path, params, body, endpoint):
        timeout = DeadlineTimeout(lookup.deadline, *self._timeouts)
        retry = (self._retry if method == 'GET' else self._write_retry).new(
            lookup=lookup, limiter=self.limiter
        )
        url = self._prefix + path
        if params:
            url += '?' + _query(tuple(params.items()))
        headers = {**self._headers, 'X-API-Key': lookup.api_key}
        if body is not None:
            headers['Content-Type'] = 'application/json'
        try:
            with self._counted():
                response = self._pool.urlopen(
                    method,
                    url,
                    body=json.dumps(body) if body is not None else None,
                    headers=headers,
                    retries=retry,
                    redirect=False,
                    assert_same_host=False,
                    timeout=timeout,
                    preload_content=False,
                )
                return response, self._read(response, lookup)
        except (urllib3_exceptions.HTTPError, OSError) as error:
            SPYCLOUD_CALLS.labels(endpoint, type(error).__name__).inc()
            raise self._relay_error(error, lookup) from None

    def _body(self, response, content, api_key):
        if response.status == 400:
            raise BadRequest(upstream_message(response, content, api_key))
        if not 200 <= response.status < 300:
            raise error_for(response, content, api_key)
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            raise UnknownError('SpyCloud sent an answer that is not valid JSON.') from None
        if not isinstance(body, dict):
            raise UnknownError('SpyCloud sent an answer of an unexpected shape.')
        return body

    def _read(self, response, lookup):
        """The body, capped, read as bytes arrive (``read1``): a trickle, whose every read is
        quick, still ends at the deadline, where ``read(n)`` would wait for all n bytes.

        A compressed body is decoded as it is read, at most CHUNK_BYTES at a time, so the cap
        holds for the decoded size: a gzip bomb is refused, never inflated whole.
        """
        body, complete = bytearray(), False
        try:
            while True:
                self._cap_wait(response, lookup.deadline)
                chunk = response.read1(CHUNK_BYTES, decode_content=True)
                if not chunk:
                    complete = True
                    return bytes(body)
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise UnknownError(
                        f'SpyCloud sent an answer larger than {MAX_BODY_BYTES} bytes.'
                    )
                if lookup.deadline.expired:
                    raise DeadlineReached()
        finally:
            if not complete:
                response.close()  # a half-read connection is not put back in the pool
            response.release_conn()

    def _cap_wait(self, response, deadline: Deadline) -> None:
        """The socket waits for the body's next bytes no longer than the read timeout or what
        is left of the deadline: the timeout urllib3 set when it sent the call counted from
        then, and a body that stalls after its head would otherwise outlive the deadline."""
        sock = getattr(response.connection, 'sock', None)
        if sock is not None:
            sock.settimeout(deadline.cap(self._timeouts[1]))

    def _relay_error(self, error, lookup):
        """What a failed exchange means for the caller. A library's text can quote a header,
        so the key is redacted from it."""
        reason = _innermost(error)
        text = redact(' '.join(str(reason).split()), lookup.api_key)[:MAX_MESSAGE_CHARS]
        if isinstance(reason, (urllib3_exceptions.SSLError, ssl.SSLError)):
            return UnknownError(f'Unable to verify SSL certificate: {text}')
        if lookup.deadline.expired:
            return DeadlineReached()
        if isinstance(error, urllib3_exceptions.DecodeError):
            return UnknownError('SpyCloud sent a compressed answer that does not decode.')
        if _timed_out(reason):
            return UnknownError(f'SpyCloud did not answer in time ({self._host}).')
        if isinstance(
            reason,
            (urllib3_exceptions.NewConnectionError, urllib3_exceptions.ProtocolError, OSError),
        ):
            return UnknownError(f'Unable to connect to SpyCloud at {self._host}: {text}')
        return UnknownError(f'The request to SpyCloud failed: {text}')


@lru_cache(maxsize=256)
def _query(params: tuple) -> str:
    """A query string, encoded once: a request's accounts are all asked with the same one."""
    return urlencode(params)


def _json_or_none(content):
    try:
        body = json.loads(content) if content else None
    except (ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


def _timed_out(reason) -> bool:
    if isinstance(reason, urllib3_exceptions.NewConnectionError):  # a subclass of the timeout
        return False
    return isinstance(reason, (urllib3_exceptions.TimeoutError, TimeoutError))


def _innermost(error):
    """The error under urllib3's wrappers (MaxRetryError.reason, ProtocolError's cause)."""
    reason = error
    for _ in range(6):
        inner = getattr(reason, 'reason', None)
        if not isinstance(inner, BaseException):
            args = getattr(reason, 'args', ())
            inner = next((a for a in args if isinstance(a, BaseException)), None)
        if not isinstance(inner, BaseException):
            break
        reason = inner
    return reason


def redact(text: str, secret: str | None) -> str:
    """``text`` without ``secret``, whole or as any of its lines (a wrapped key is quoted
    line by line in some messages)."""
    if not secret:
        return text
    for part in sorted({secret, *secret.splitlines(), secret.strip()}, key=len, reverse=True):
        if len(part.strip()) >= 4:
            text = text.replace(part, '[redacted]')
    return text
