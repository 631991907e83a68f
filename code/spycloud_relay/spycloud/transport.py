"""HTTP to SpyCloud, one call at a time: pace it, send it, read it, say what it meant.

Each step is another module's idea: the per-key pacing is state/'s limiter, what is retried
and how long each wait may be is spycloud/retry.py, the pool (CA bundle, proxy) is
spycloud/connections.py, the body is read under a cap and the deadline by bounded_read.py,
and what a failure means is spycloud/failures.py's tables. Redirects are never followed: the
key header would go wherever they point.
"""

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import urllib3
from urllib3 import BaseHTTPResponse
from urllib3 import exceptions as urllib3_exceptions

from spycloud_relay import state
from spycloud_relay.bounded_read import BoundedReadError, read_bounded
from spycloud_relay.config import VERSION, Settings
from spycloud_relay.errors import AuthorizationError, UnknownError
from spycloud_relay.metrics import LIMITER_WAIT_SECONDS, SPYCLOUD_CALLS, SPYCLOUD_RETRIES
from spycloud_relay.metrics import endpoint_label as _untyped_endpoint_label
from spycloud_relay.spycloud.connections import connection_pool
from spycloud_relay.spycloud.failures import answer_error, exchange_error
from spycloud_relay.spycloud.lookup import UNSENDABLE_KEY, Lookup
from spycloud_relay.spycloud.retry import DeadlineTimeout, SpyCloudRetry

log = logging.getLogger(__name__)

USER_AGENT = f'SpyCloud-XDR-Relay/{VERSION}'
# A page of 1000 records is about half a megabyte; anything far larger is not SpyCloud's answer.
MAX_BODY_BYTES = 32 * 1024 * 1024
CHUNK_BYTES = 64 * 1024
# metrics.py is not annotated yet: its function's signature, for this module's strict check.
endpoint_label: Callable[[str], str] = _untyped_endpoint_label


class Transport:
    """GETs JSON from SpyCloud within a lookup's deadline, paced per key, mapped to RelayErrors."""

    def __init__(self, settings: Settings) -> None:
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
    def _counted(self) -> Iterator[None]:
        with self._active_lock:
            self._active += 1
        try:
            yield
        finally:
            with self._active_lock:
                self._active -= 1

    def get(
        self,
        lookup: Lookup,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        final: tuple[int, ...] = (),
    ) -> dict[str, Any]:
        """The JSON object SpyCloud answers; raises RelayError, BadRequest or DeadlineReached.
        A status in ``final`` is not retried: the caller has a better answer to it."""
        # A GET expects no other status: its answer is _body's JSON object, or it raised.
        body: dict[str, Any] = self.call(lookup, 'GET', path, params=params, final=final)[1]
        return body

    def call(
        self,
        lookup: Lookup,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        expect: tuple[int, ...] = (),
        final: tuple[int, ...] = (),
    ) -> tuple[int, Any]:
        """(status, JSON object or None) for a 2xx or a status in ``expect`` (a watchlist's
        404 or 409 is an answer, not a failure); else raises as ``get`` does. A write is
        retried only where it cannot have landed: a connection never made, a throttling 429;
        a status in ``final`` never is."""
        if not lookup.key_sendable:
            raise AuthorizationError(UNSENDABLE_KEY)
        lookup.deadline.check()
        self._pace(lookup)
        endpoint, started = endpoint_label(path), time.monotonic()
        retry = (self._retry if method == 'GET' else self._write_retry).sparing(final)
        response, content = self._exchange(lookup, method, path, params, body, endpoint, retry)
        self._record(lookup, method, endpoint, response, started)
        if response.status in expect:
            return response.status, _json_or_none(content)
        if method != 'GET' and 200 <= response.status < 300:
            return response.status, _json_or_none(content)  # 201 or 204: the body is optional
        return response.status, self._body(response, content, lookup.api_key)

    def _pace(self, lookup: Lookup) -> None:
        waited = self.limiter.acquire(lookup.fingerprint, lookup.deadline)
        LIMITER_WAIT_SECONDS.observe(waited)
        lookup.stats.add(spycloud_calls=1, limiter_wait_s=waited)

    def _record(
        self,
        lookup: Lookup,
        method: str,
        endpoint: str,
        response: BaseHTTPResponse,
        started: float,
    ) -> None:
        """The call's metrics, its retries in the lookup's stats, and a debug line."""
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

    def _exchange(
        self,
        lookup: Lookup,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: Mapping[str, Any] | None,
        endpoint: str,
        retry: SpyCloudRetry,
    ) -> tuple[BaseHTTPResponse, bytes]:
        """The answer and its body, read whole; a failure raised as what it means."""
        url = self._prefix + path
        if params:
            url += '?' + _query(tuple(params.items()))
        headers = {**self._headers, 'X-API-Key': lookup.api_key}
        if body is not None:
            headers['Content-Type'] = 'application/json'
        retry = retry.new(lookup=lookup, limiter=self.limiter)
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
                    timeout=DeadlineTimeout(lookup.deadline, *self._timeouts),
                    preload_content=False,
                )
                return response, self._read(response, lookup)
        except (urllib3_exceptions.HTTPError, OSError) as error:
            SPYCLOUD_CALLS.labels(endpoint, type(error).__name__).inc()
            raise self._failure(error, lookup) from None
        except BoundedReadError as error:
            raise self._failure(error, lookup) from None

    def _failure(self, error: BaseException, lookup: Lookup) -> Exception:
        return exchange_error(
            error, api_key=lookup.api_key, host=self._host, deadline=lookup.deadline
        )

    def _read(self, response: BaseHTTPResponse, lookup: Lookup) -> bytes:
        """The body, under MAX_BODY_BYTES decoded, ended at the deadline, each socket wait no
        longer than the read timeout or what is left of the deadline (bounded_read.py)."""
        deadline, read_timeout = lookup.deadline, self._timeouts[1]
        return read_bounded(
            response,
            max_bytes=MAX_BODY_BYTES,
            expired=lambda: deadline.expired,
            chunk_bytes=CHUNK_BYTES,
            wait_at_most=lambda: deadline.cap(read_timeout),
        )

    def _body(self, response: BaseHTTPResponse, content: bytes, api_key: str) -> dict[str, Any]:
        if not 200 <= response.status < 300:
            raise answer_error(response, content, api_key)
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            raise UnknownError('SpyCloud sent an answer that is not valid JSON.') from None
        if not isinstance(body, dict):
            raise UnknownError('SpyCloud sent an answer of an unexpected shape.')
        return body


@lru_cache(maxsize=256)
def _query(params: tuple[tuple[str, str], ...]) -> str:
    """A query string, encoded once: a request's accounts are all asked with the same one."""
    return urlencode(params)


def _json_or_none(content: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(content) if content else None
    except (ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None
