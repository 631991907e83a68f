"""The per-key rate budget lives in state/ratelimit.py (adaptive, shared through Redis with
REDIS_URL); ``RateLimiter(rate, burst)`` stays for the callers that build one directly."""

from state.ratelimit import AdaptiveLimiter, BudgetRule


class RateLimiter(AdaptiveLimiter):
    """An in-process adaptive budget with ``rate`` as its ceiling."""

    def __init__(self, rate: float, burst: float) -> None:
        super().__init__(
            BudgetRule(ceiling=float(rate), burst=burst, regrow_per_s=float(rate) / 20)
        )
