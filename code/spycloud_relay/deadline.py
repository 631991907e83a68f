"""A lookup's time budget, below XDR's patience.

When it runs out the relay answers with what it has, instead of being cut off
by XDR (or gunicorn) with nothing. Every wait and every outbound timeout is
capped by the time left, so no thread outlives the answer by more than a blink.
"""

import time


class DeadlineReached(Exception):
    """The budget ran out before this step could finish; the caller keeps what it has."""


class Deadline:
    """The time budget of one request's lookups."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self._at - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self._at

    def check(self) -> None:
        if self.expired:
            raise DeadlineReached()

    def cap(self, seconds: float) -> float:
        """A timeout no longer than the time left (never 0, which would mean 'no timeout')."""
        return max(0.001, min(seconds, self.remaining()))
