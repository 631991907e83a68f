"""A token bucket per API key, shared by all threads of a worker process.

SpyCloud throttles each key (429 TooManyRequestsException); pacing the calls
here keeps a burst of lookups under the limit instead of spending retries on it.
Waits are reservations (first come, first served), bounded by the deadline.
"""
import threading
import time

from cachetools import TTLCache

from spycloud.deadline import DeadlineReached


class RateLimiter:
    def __init__(self, rate, burst):
        self.rate = float(rate)
        self.burst = max(1.0, float(burst))
        self._buckets = TTLCache(maxsize=4096, ttl=3600)
        self._lock = threading.Lock()

    @property
    def enabled(self):
        return self.rate > 0

    def acquire(self, key, deadline=None):
        """Take one token for ``key``; returns the seconds waited for it."""
        if not self.enabled:
            return 0.0
        with self._lock:
            now = time.monotonic()
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate) - 1.0
            wait = -tokens / self.rate if tokens < 0 else 0.0
            if deadline is not None and wait > deadline.remaining():
                raise DeadlineReached()  # the token is not taken: nobody else waits for it
            self._buckets[key] = (tokens, now)
        if wait:
            time.sleep(wait)
        return wait
