"""A lookup's time budget, below XDR's patience.

When it runs out the relay answers with what it has, instead of being cut off
by XDR (or gunicorn) with nothing. Every wait and every outbound timeout is
capped by the time left, so no thread outlives the answer by more than a blink.
"""
import threading
import time


class DeadlineReached(Exception):
    """The budget ran out before this step could finish; the caller keeps what it has."""


class LookupStats:
    """What one request spent at SpyCloud, for its log line: calls, retries, cache hits."""

    FIELDS = ('spycloud_calls', 'retries', 'cache_hits', 'cache_misses', 'limiter_wait_s')

    def __init__(self):
        self._lock = threading.Lock()
        self.spycloud_calls = self.retries = self.cache_hits = self.cache_misses = 0
        self.limiter_wait_s = 0.0

    def add(self, **amounts):
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)

    def as_dict(self):
        with self._lock:
            return {name: round(getattr(self, name), 4) if name.endswith('_s')
                    else getattr(self, name) for name in self.FIELDS}


class Deadline:
    """The time budget of one request's lookups, and the tally of what they spent."""

    def __init__(self, seconds, stats=None):
        self.seconds = seconds
        self.stats = stats or LookupStats()
        self._at = time.monotonic() + seconds

    def remaining(self):
        return max(0.0, self._at - time.monotonic())

    @property
    def expired(self):
        return time.monotonic() >= self._at

    def check(self):
        if self.expired:
            raise DeadlineReached()

    def cap(self, seconds):
        """A timeout no longer than the time left (never 0, which would mean 'no timeout')."""
        return max(0.001, min(seconds, self.remaining()))
