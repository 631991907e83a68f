"""One Redis connection pool per process, and its health: Redis failing never fails a lookup.

Every command has a timeout of tens of milliseconds and no retry of its own. The first failure
starts an outage: one WARNING (the URL shown without its password), then the callers use their
in-process twins without touching the network, except one probe per interval; the first probe
that Redis answers ends the outage.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from spycloud_relay.metrics import STATE_OUTAGES

log = logging.getLogger(__name__)
T = TypeVar('T')
PROBE_INTERVAL_S = 1.0


class Unavailable(Exception):
    """Redis did not answer (or is in an outage): the caller uses its in-process twin."""


def safe_url(url: str) -> str:
    """``scheme://host:port/db`` for a log line: no user, password or query (which can hold
    a password too)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition('@')[2]
    credentials = '***@' if '@' in parts.netloc else ''
    return f'{parts.scheme}://{credentials}{netloc}{parts.path}'


class RedisLink:
    """A Redis client shared by the stores and the limiter of a process: one outage, one
    warning, whoever meets it first."""

    def __init__(
        self,
        url: str,
        timeout_s: float,
        *,
        probe_interval_s: float = PROBE_INTERVAL_S,
        client: redis.Redis | None = None,
    ) -> None:
        self.where = safe_url(url)
        self.probe_interval_s = probe_interval_s
        self._password = urlsplit(url).password or ''
        self._client = client or redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
        )
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._refusals: set[str] = set()

    @property
    def client(self) -> redis.Redis:
        return self._client

    @property
    def up(self) -> bool:
        return self._down_since is None

    def call(self, operation: Callable[[redis.Redis], T]) -> T:
        """``operation(client)``'s result; raises Unavailable when Redis fails or is down."""
        if not self._admitted():
            raise Unavailable()
        try:
            result = operation(self._client)
        except redis.ResponseError as error:
            if self._down_since is not None:
                self._answered()
            self._refused(error)  # Redis answers: a refusal (OOM, ACL, scripts off) is no outage
            raise Unavailable() from None
        except (redis.RedisError, OSError) as error:
            self._failed(error)
            raise Unavailable() from None
        if self._down_since is not None:
            self._answered()
        return result

    def _admitted(self) -> bool:
        """Always while up; during an outage, one caller per probe interval (the probe)."""
        if self._down_since is None:
            return True
        with self._lock:
            now = time.monotonic()
            if self._down_since is None or now >= self._next_probe:
                self._next_probe = now + self.probe_interval_s
                return True
            return False

    def _failed(self, error: BaseException) -> None:
        with self._lock:
            now = time.monotonic()
            self._next_probe = now + self.probe_interval_s
            began = self._down_since is None
            if began:
                self._down_since = now
        if began:
            STATE_OUTAGES.inc()
            log.warning(
                'Redis at %s does not answer (%s: %s): caches and the SpyCloud rate '
                "budget use this process's own state until it does",
                self.where,
                type(error).__name__,
                self._redacted(error),
            )
        # Connections to a dead server would fail the first probes after it is back.
        self._client.connection_pool.disconnect(inuse_connections=False)

    def _refused(self, error: BaseException) -> None:
        """A WARNING the first time Redis refuses a command with an error of a kind (OOM, no
        permission, ...), not at every call."""
        kind = type(error).__name__
        with self._lock:
            if kind in self._refusals:
                return
            self._refusals.add(kind)
        log.warning(
            'Redis at %s refused a command (%s: %s): what it would have kept stays in this process',
            self.where,
            kind,
            self._redacted(error),
        )

    def _answered(self) -> None:
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            log.info(
                'Redis at %s answers again after %.1f s: caches and the rate budget '
                'are shared again',
                self.where,
                time.monotonic() - since,
            )

    def _redacted(self, error: BaseException) -> str:
        """The error's words: not the password, nor the command a pipeline's error quotes
        (sealed values are no secret, but they are bytes, not words)."""
        text = str(error).rpartition('caused error: ')[2]
        text = ' '.join(''.join(c if c.isprintable() else ' ' for c in text).split())[:200]
        return text.replace(self._password, '***') if self._password else text
