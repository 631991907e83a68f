"""What a SpyCloud call retries, and how long each of its waits may be.

urllib3 takes ``retries=`` per request, so each call's Retry carries what bounds it (the
lookup's deadline, the rate limiter, the key's fingerprint) and nothing travels through
thread-locals. Retries follow urllib3's rules (exponential backoff with jitter, Retry-After
honoured) with two additions: a 429 for an exhausted monthly quota is final, and no retry is
started that would end past the lookup's deadline. Every timeout of an attempt is capped by
what is left of that deadline (``DeadlineTimeout``).
"""

from collections.abc import Mapping
from types import TracebackType
from typing import Any

import urllib3
from urllib3 import BaseHTTPResponse
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import InvalidHeader, MaxRetryError
from urllib3.util.retry import Retry

from spycloud_relay.config import Settings
from spycloud_relay.deadline import Deadline, DeadlineReached
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.state import Limiter

QUOTA_ERROR_TYPE = 'LimitExceededException'


def is_quota_exhausted(headers: Mapping[str, str]) -> bool:
    """API Gateway's 429 for the monthly quota (final), not its throttling 429 (retried)."""
    return QUOTA_ERROR_TYPE.lower() in headers.get('x-amzn-ErrorType', '').lower()


class QuotaExhausted(Exception):
    """The monthly quota's 429: final, never retried."""


class SpyCloudRetry(Retry):
    """urllib3's Retry for one call: bounded by its lookup's deadline, paced by the limiter."""

    def __init__(
        self,
        *args: Any,
        lookup: Lookup | None = None,
        limiter: Limiter | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lookup, self.limiter = lookup, limiter

    @classmethod
    def from_settings(cls, settings: Settings) -> 'SpyCloudRetry':
        """GETs: retried on connection errors, one read error, 429 and 502/503/504."""
        return cls._with(
            settings,
            read=min(1, settings.spycloud_retries),
            methods={'GET'},
            statuses=(429, 502, 503, 504),
        )

    @classmethod
    def for_writes(cls, settings: Settings) -> 'SpyCloudRetry':
        """POST and DELETE are retried only where the first attempt cannot have landed: a
        connection that was never made, and API Gateway's throttling 429 (refused before the
        service saw it). A reset, a timeout or a 5xx after sending is final."""
        return cls._with(settings, read=0, methods={'POST', 'DELETE'}, statuses=(429,))

    @classmethod
    def _with(
        cls, settings: Settings, read: int, methods: set[str], statuses: tuple[int, ...]
    ) -> 'SpyCloudRetry':
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

    def sparing(self, statuses: tuple[int, ...]) -> 'SpyCloudRetry':
        """This Retry without ``statuses``: a caller with a better answer to them than the
        same call again (a watchlist window that 504s is split, not asked again)."""
        if not statuses:
            return self
        kept = tuple(s for s in (self.status_forcelist or ()) if s not in statuses)
        return self.new(status_forcelist=kept)

    def new(self, **kwargs: Any) -> 'SpyCloudRetry':
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
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> 'SpyCloudRetry':
        """urllib3's count, plus: the quota's 429 is final, a throttling 429 cuts the key's
        budget, and a wait that would end past the deadline is not started."""
        if response is not None and response.status == 429 and is_quota_exhausted(response.headers):
            quota = QuotaExhausted('monthly quota exhausted')
            raise MaxRetryError(_pool, url, quota)  # type: ignore[arg-type]  # as urllib3 does
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
                raise MaxRetryError(_pool, url, error or DeadlineReached())  # type: ignore[arg-type]
        return retry

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
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
