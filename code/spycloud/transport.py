"""HTTP to SpyCloud: one pooled Session per process, urllib3 Retry, errors → RelayErrors.

Retries follow urllib3's rules (exponential backoff with jitter, Retry-After
honoured) with two additions: a 429 for an exhausted monthly quota is final,
and no retry is started that would end past the lookup's deadline.
"""
import hashlib
import json
import logging
import threading
import time
from contextlib import contextmanager

import requests
from requests.adapters import HTTPAdapter
from urllib3 import exceptions as urllib3_exceptions
from urllib3.exceptions import InvalidHeader, MaxRetryError
from urllib3.util.retry import Retry

from api.errors import (AuthorizationError, InternalServerError, NotFoundError,
                        TooManyRequestsError, UnknownError)
from config import VERSION
from metrics import LIMITER_WAIT_SECONDS, SPYCLOUD_CALLS, SPYCLOUD_RETRIES, endpoint_label
from spycloud.deadline import Deadline, DeadlineReached
from spycloud.ratelimit import RateLimiter

log = logging.getLogger(__name__)

USER_AGENT = f'SpyCloud-XDR-Relay/{VERSION}'
# A page of 1000 records is about half a megabyte; anything far larger is not SpyCloud's answer.
MAX_BODY_BYTES = 32 * 1024 * 1024
CHUNK_BYTES = 64 * 1024
QUOTA_ERROR_TYPE = 'LimitExceededException'
MAX_MESSAGE_CHARS = 300


def is_quota_exhausted(headers):
    return QUOTA_ERROR_TYPE.lower() in headers.get('x-amzn-ErrorType', '').lower()


UNSENDABLE_KEY = ('the SpyCloud API key in the module settings holds a line break or another '
                  'character an HTTP header cannot carry; paste it again as one line')


def sendable_key(api_key):
    """A key requests can put in a header: printable Latin-1, no line break (a wrapped paste
    would otherwise make requests raise an error that quotes the key)."""
    return bool(api_key) and all(' ' <= char <= '\xff' and char != '\x7f' for char in api_key)


def key_fingerprint(api_key):
    """Caches and buckets are keyed by a hash of the API key, never the key itself."""
    return hashlib.sha256(api_key.encode('utf-8')).hexdigest()[:32]


# urllib3 runs retries inside session.get, out of reach of arguments: the call being made
# tells its Retry about its deadline and API key through this thread-local.
_call = threading.local()


@contextmanager
def _calling(deadline, key):
    _call.deadline, _call.key = deadline, key
    try:
        yield
    finally:
        _call.deadline = _call.key = None


class SpyCloudRetry(Retry):
    """urllib3's Retry, bounded by the calling thread's deadline and paced by its limiter."""

    limiter = None  # set by build_session

    def new(self, **kw):
        retry = super().new(**kw)
        retry.limiter = self.limiter
        return retry

    def parse_retry_after(self, retry_after):
        """Seconds to wait: a positive number (``0.5`` included) or an HTTP date; anything
        else (``-1``, empty, text) is no advice, and the backoff applies instead of an error."""
        try:
            seconds = float(retry_after)
        except (TypeError, ValueError):
            seconds = None
        if seconds is not None:
            return seconds if 0 < seconds < float('inf') else None
        try:
            return super().parse_retry_after(retry_after)
        except InvalidHeader:
            return None

    def increment(self, method=None, url=None, response=None, error=None,
                  _pool=None, _stacktrace=None):
        if response is not None and response.status == 429 \
                and is_quota_exhausted(response.headers):
            raise MaxRetryError(_pool, url, 'monthly quota exhausted')
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        deadline = getattr(_call, 'deadline', None)
        if deadline is not None:
            pause = retry.get_retry_after(response) if response is not None else None
            pause = retry.get_backoff_time() if pause is None else pause
            if pause >= deadline.remaining():
                raise MaxRetryError(_pool, url, error or 'lookup deadline reached')
        return retry

    def sleep(self, response=None):
        super().sleep(response)
        deadline = getattr(_call, 'deadline', None)
        if self.limiter is not None and deadline is not None:
            self.limiter.acquire(_call.key, deadline)


def build_session(settings, limiter=None):
    retry = SpyCloudRetry(
        total=settings.spycloud_retries,
        connect=settings.spycloud_retries,
        read=min(1, settings.spycloud_retries),
        status=settings.spycloud_retries,
        other=0,
        allowed_methods=frozenset({'GET'}),
        status_forcelist=(429, 502, 503, 504),
        backoff_factor=settings.spycloud_backoff_s,
        backoff_jitter=settings.spycloud_backoff_s / 2,
        backoff_max=max(settings.spycloud_backoff_s * 8, 1.0),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    retry.limiter = limiter
    # Lookups and catalog fetches run on two pools of spycloud_max_workers threads each.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=2 * settings.spycloud_max_workers + 8,
                          max_retries=retry)
    session = requests.Session()
    session.mount('https://', adapter)
    session.mount('http://', adapter)
    session.headers.update({'Accept': 'application/json', 'User-Agent': USER_AGENT})
    return session


def upstream_message(response, content, api_key=None):
    """SpyCloud's own words for an error, trimmed, without the API key should it echo it."""
    message = ''
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if isinstance(body, dict):
        for name in ('message', 'errorMessage', 'error'):
            if isinstance(body.get(name), str) and body[name].strip():
                message = body[name].strip()
                break
    message = message or response.reason or f'HTTP {response.status_code}'
    detail = response.headers.get('SpyCloud-Error', '').strip()
    if detail and detail.lower() not in message.lower():
        message = f'{message} ({detail})'
    return redact(' '.join(message.split()), api_key)[:MAX_MESSAGE_CHARS]


class Refused(AuthorizationError):
    """A 403 that is not about the key or the caller's IP: this selector is not for this key
    (SpyCloud searches only the identifiers on the customer's verified watchlist)."""


KEY_PROBLEMS = ('invalid api key', 'invalid ip', 'api key')


def error_for(response, content, api_key=None):
    """The RelayError for a non-2xx answer."""
    status = response.status_code
    if 300 <= status < 400:
        return UnknownError(f'SpyCloud answered HTTP {status}, a redirect, which the relay does '
                            'not follow (the API key would go along): check SPYCLOUD_API_URL.')
    message = upstream_message(response, content, api_key)
    if status == 403:
        detail = response.headers.get('SpyCloud-Error', '').lower()
        if not any(problem in detail for problem in KEY_PROBLEMS):
            return Refused(message)
    if status in (401, 403):
        return AuthorizationError(message)
    if status == 404:
        return NotFoundError('The SpyCloud API answered 404 Not Found: '
                             'check SPYCLOUD_API_URL.')
    if status == 429:
        if is_quota_exhausted(response.headers):
            return TooManyRequestsError(
                'The SpyCloud monthly quota of this API key is exhausted; '
                'SpyCloud support can raise it.')
        return TooManyRequestsError('Too many requests have been made to SpyCloud. '
                                    'Please, try again later.')
    if status == 500:
        return InternalServerError(f'The SpyCloud internal error: {message}')
    return UnknownError(f'SpyCloud answered HTTP {status}: {message}')


class BadRequest(Exception):
    """SpyCloud's 400: the relay reads it as 'no data' for the selector."""


class Transport:
    """GETs JSON from SpyCloud within a deadline, paced per key, mapped to RelayErrors."""

    def __init__(self, settings, session=None):
        self._base = settings.spycloud_api_url
        self._host = self._base.split('/')[2]
        self._connect_timeout = settings.connect_timeout_s
        self._read_timeout = settings.read_timeout_s
        self._default_budget = settings.lookup_deadline_s
        self.limiter = RateLimiter(settings.spycloud_rate_limit, settings.spycloud_burst)
        self._session = session or build_session(settings, self.limiter)
        self._active = 0
        self._active_lock = threading.Lock()

    @property
    def in_flight(self):
        """Calls under way now: zero soon after every answer, or a thread was left busy."""
        return self._active

    def close(self):
        self._session.close()

    @contextmanager
    def _counted(self):
        with self._active_lock:
            self._active += 1
        try:
            yield
        finally:
            with self._active_lock:
                self._active -= 1

    def get(self, api_key, path, params=None, deadline=None):
        """The JSON object SpyCloud answers; raises RelayError, BadRequest or DeadlineReached."""
        if not sendable_key(api_key):
            raise AuthorizationError(UNSENDABLE_KEY)
        deadline = deadline or Deadline(self._default_budget)
        deadline.check()
        key, endpoint = key_fingerprint(api_key), endpoint_label(path)
        waited = self.limiter.acquire(key, deadline)
        LIMITER_WAIT_SECONDS.observe(waited)
        deadline.stats.add(spycloud_calls=1, limiter_wait_s=waited)
        timeout = (deadline.cap(self._connect_timeout), deadline.cap(self._read_timeout))
        started = time.monotonic()
        try:
            with _calling(deadline, key), self._counted():
                # Never follow a redirect: the key header would go wherever it points.
                response = self._session.get(self._base + path, params=params, timeout=timeout,
                                             headers={'X-API-Key': api_key}, stream=True,
                                             allow_redirects=False)
                content = self._read(response, deadline, api_key)
        except requests.RequestException as error:
            SPYCLOUD_CALLS.labels(endpoint, type(error).__name__).inc()
            raise self._relay_error(error, deadline, api_key) from None
        SPYCLOUD_CALLS.labels(endpoint, str(response.status_code)).inc()
        retries = len(getattr(getattr(response.raw, 'retries', None), 'history', ()) or ())
        if retries:
            SPYCLOUD_RETRIES.labels(endpoint).inc(retries)
            deadline.stats.add(retries=retries)
        log.debug('GET %s -> %s in %.0f ms (%d retries)', endpoint, response.status_code,
                  (time.monotonic() - started) * 1000, retries)
        if response.status_code == 400:
            raise BadRequest(upstream_message(response, content, api_key))
        if not 200 <= response.status_code < 300:
            raise error_for(response, content, api_key)
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            raise UnknownError('SpyCloud sent an answer that is not valid JSON.') from None
        if not isinstance(body, dict):
            raise UnknownError('SpyCloud sent an answer of an unexpected shape.')
        return body

    def _read(self, response, deadline, api_key):
        """The body, capped, read as bytes arrive (``read1``): a trickle, whose every read is
        quick, still ends at the deadline, where ``read(n)`` would wait for all n bytes.

        A compressed body (requests asks for gzip and deflate) is decoded as it is read, at
        most CHUNK_BYTES at a time, so the cap holds for the decoded size: a gzip bomb is
        refused after MAX_BODY_BYTES, never inflated whole.
        """
        body = bytearray()
        with response:
            try:
                while True:
                    chunk = response.raw.read1(CHUNK_BYTES, decode_content=True)
                    if not chunk:
                        return bytes(body)
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise UnknownError(f'SpyCloud sent an answer larger than '
                                           f'{MAX_BODY_BYTES} bytes.')
                    if deadline.expired:
                        raise DeadlineReached()
            except (urllib3_exceptions.HTTPError, OSError) as error:
                raise self._relay_error(error, deadline, api_key) from None

    def _relay_error(self, error, deadline, api_key):
        """What a failed exchange (a requests error, or urllib3's while reading the body)
        means for the caller. A library's text can quote a header, so the key is redacted."""
        reason = _reason(error, api_key)
        if isinstance(error, requests.exceptions.SSLError):
            return UnknownError(f'Unable to verify SSL certificate: {reason}')
        if deadline.expired:
            return DeadlineReached()
        if _timed_out(error):
            return UnknownError(f'SpyCloud did not answer in time ({self._host}).')
        if isinstance(error, requests.exceptions.ConnectionError):
            return UnknownError(f'Unable to connect to SpyCloud at {self._host}: {reason}')
        if isinstance(error, urllib3_exceptions.DecodeError):
            return UnknownError('SpyCloud sent a compressed answer that does not decode.')
        return UnknownError(f'The request to SpyCloud failed: {reason}')


def _timed_out(error):
    """requests reports a read timeout that used up the retries as a ConnectionError."""
    if isinstance(error, requests.exceptions.Timeout):
        return True
    reason = _innermost(error)
    if isinstance(reason, urllib3_exceptions.NewConnectionError):  # a subclass of the timeout
        return False
    return isinstance(reason, (urllib3_exceptions.TimeoutError, TimeoutError))


def _innermost(error):
    reason = error
    for _ in range(6):
        inner = getattr(reason, 'reason', None) or (reason.args[0] if reason.args else None)
        if not isinstance(inner, BaseException):
            break
        reason = inner
    return reason


def _reason(error, secret=None):
    """The innermost reason of a requests/urllib3 error, the secret redacted."""
    return redact(' '.join(str(_innermost(error)).split()), secret)[:MAX_MESSAGE_CHARS]


def redact(text, secret):
    """``text`` without ``secret``, whole or as any of its lines (a wrapped key is quoted
    line by line in some messages)."""
    if not secret:
        return text
    for part in sorted({secret, *secret.splitlines(), secret.strip()}, key=len, reverse=True):
        if len(part.strip()) >= 4:
            text = text.replace(part, '[redacted]')
    return text
