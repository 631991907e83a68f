"""An adaptive SpyCloud rate budget per API key, shared by every worker and replica with Redis.

SpyCloud's limit is per key and unpublished, so the budget adapts (AIMD): it starts at the
ceiling (SPYCLOUD_RATE_LIMIT calls per second), is halved by a throttling 429 (once per second
at most: the 429s of calls already in flight are one signal, not ten), never below the floor
(SPYCLOUD_RATE_FLOOR), and grows back by ceiling / SPYCLOUD_RATE_RECOVERY_S calls per second
for every second without a 429. A Retry-After pauses the key's budget that long, and after any
429 the burst is spent: calls resume one interval apart.

The pacing is GCRA (a token bucket kept as one timestamp, the theoretical arrival time): a
call reserves the next slot and waits for it, first come first served, unless the wait would
pass its deadline, and then it takes nothing. With Redis the budget is one hash per key and
every decision one Lua script run atomically on Redis's clock, so all workers share it.
"""

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from cachetools import TTLCache

from spycloud_relay.config import Settings
from spycloud_relay.deadline import Deadline, DeadlineReached
from spycloud_relay.metrics import RATE_BUDGET_CUTS, STATE_FALLBACKS
from spycloud_relay.state.crypto import budget_name
from spycloud_relay.state.link import RedisLink, Unavailable


@dataclass(frozen=True)
class BudgetRule:
    """The shape of every key's budget; a ceiling of 0 turns the limiter off."""

    ceiling: float
    burst: float = 1.0
    floor: float = 0.5
    regrow_per_s: float = 0.5  # calls/s regained per second without a throttling 429
    cut_factor: float = 0.5
    cut_interval_s: float = 1.0
    max_pause_s: float = 60.0
    idle_s: float = 3600.0  # an unused budget is forgotten (back to the ceiling) after this

    def __post_init__(self) -> None:
        object.__setattr__(self, 'burst', max(1.0, float(self.burst)))
        if self.ceiling > 0:
            object.__setattr__(self, 'floor', min(max(self.floor, 1e-3), self.ceiling))

    @classmethod
    def from_settings(cls, settings: Settings) -> 'BudgetRule':
        ceiling = settings.spycloud_rate_limit
        return cls(
            ceiling=ceiling,
            burst=settings.spycloud_burst,
            floor=settings.spycloud_rate_floor,
            regrow_per_s=ceiling / settings.spycloud_rate_recovery_s,
        )

    @property
    def enabled(self) -> bool:
        return self.ceiling > 0

    @property
    def reach_s(self) -> float:
        """How far ahead of now a budget's moments can lie: the longest pause, then a burst
        at the floor, and as long again for calls queued behind it. Further is junk."""
        return 2 * (self.max_pause_s + (self.burst + 1) / self.floor)


@dataclass(frozen=True)
class _Budget:
    tat: float  # when the budget is spent up to (GCRA's theoretical arrival time)
    rate: float  # calls per second, as of ``grown``
    grown: float  # regrowth counts from here (the end of a pause lies ahead)
    cut: float  # when the rate was last cut


def _grown(budget: _Budget, rule: BudgetRule, now: float) -> _Budget:
    rate = min(rule.ceiling, max(rule.floor, budget.rate))
    if now > budget.grown:
        return replace(
            budget,
            rate=min(rule.ceiling, rate + rule.regrow_per_s * (now - budget.grown)),
            grown=now,
        )
    return replace(budget, rate=rate)


def _reserve(
    budget: _Budget, rule: BudgetRule, now: float, max_wait: float | None
) -> tuple[float | None, _Budget]:
    """(seconds to wait for the next slot, the budget with it taken), or (None, unchanged)."""
    budget = _grown(budget, rule, now)
    interval = 1.0 / budget.rate
    tat = max(budget.tat, now) + interval
    wait = max(0.0, tat - rule.burst * interval - now)
    if max_wait is not None and wait > max_wait:
        return None, budget
    return wait, replace(budget, tat=tat)


def _throttle(
    budget: _Budget, rule: BudgetRule, now: float, retry_after: float | None
) -> tuple[bool, _Budget]:
    """(whether the rate was cut, the budget after a throttling 429)."""
    budget = _grown(budget, rule, now)
    cut = now - budget.cut >= rule.cut_interval_s
    rate = max(rule.floor, budget.rate * rule.cut_factor) if cut else budget.rate
    resume = now + min(max(retry_after or 0.0, 0.0), rule.max_pause_s)
    return cut, _Budget(
        tat=max(budget.tat, resume + (rule.burst - 1) / rate),
        rate=rate,
        grown=max(budget.grown, resume),
        cut=now if cut else budget.cut,
    )


class Limiter:
    """``acquire`` before every SpyCloud call, ``throttled`` on a throttling 429."""

    def __init__(self, rule: BudgetRule, sleep: Callable[[float], None] = time.sleep) -> None:
        self.rule = rule
        self._sleep = sleep

    @property
    def enabled(self) -> bool:
        return self.rule.enabled

    def acquire(self, key: str, deadline: Deadline | None = None) -> float:
        """Take the next slot of ``key``'s budget; returns the seconds waited for it. Raises
        DeadlineReached, taking nothing (nobody waits behind it), when the wait would pass
        the deadline."""
        if not self.enabled:
            return 0.0
        wait = self.reserve(key, None if deadline is None else deadline.remaining())
        if wait is None:
            raise DeadlineReached()
        if wait > 0:
            self._sleep(wait)
        return wait

    def reserve(self, key: str, max_wait: float | None) -> float | None:
        """The wait for a slot now taken, or None when it would be longer than ``max_wait``."""
        raise NotImplementedError

    def throttled(self, key: str, retry_after: float | None = None) -> None:
        """SpyCloud throttled ``key``: cut its rate, and pause it ``retry_after`` seconds."""
        raise NotImplementedError

    def rate(self, key: str) -> float:
        """``key``'s rate now, in calls per second."""
        raise NotImplementedError


class AdaptiveLimiter(Limiter):
    """The budget of each key in this process (REDIS_URL unset, or Redis not answering)."""

    def __init__(
        self,
        rule: BudgetRule,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(rule, sleep)
        self._clock = clock
        self._budgets: TTLCache[str, _Budget] = TTLCache(4096, ttl=rule.idle_s, timer=clock)
        self._lock = threading.Lock()

    def _budget(self, key: str, now: float) -> _Budget:
        return self._budgets.get(key) or _Budget(
            tat=now, rate=self.rule.ceiling, grown=now, cut=-math.inf
        )

    def reserve(self, key: str, max_wait: float | None) -> float | None:
        with self._lock:
            now = self._clock()
            wait, budget = _reserve(self._budget(key, now), self.rule, now, max_wait)
            if wait is not None:
                self._budgets[key] = budget
            return wait

    def throttled(self, key: str, retry_after: float | None = None) -> None:
        if not self.enabled:
            return
        with self._lock:
            now = self._clock()
            cut, self._budgets[key] = _throttle(self._budget(key, now), self.rule, now, retry_after)
        if cut:
            RATE_BUDGET_CUTS.inc()

    def rate(self, key: str) -> float:
        if not self.enabled:
            return 0.0
        with self._lock:
            now = self._clock()
            return _grown(self._budget(key, now), self.rule, now).rate


# The same arithmetic as _reserve, _throttle and _grown, on Redis's clock, atomically.
# KEYS[1]: the budget. ARGV: op (acquire, throttle, peek), ceiling, burst, floor, regrowth,
# cut factor, cut interval, argument (acquire: the longest wait, -1 for none; throttle: the
# pause), idle TTL in ms, the furthest ahead of now a saved moment may lie. Returns {granted
# or cut (0/1), wait in µs, rate in calls per 1000 s}. What is read is checked first: a value
# that is no number, nan, or a moment further ahead than the budget can reach (junk, or a
# clock that went back: a failover to a replica whose clock is behind) is read as absent, so
# it can neither refuse every call of the key nor turn its pacing off.
BUDGET_SCRIPT = """
local ceiling, burst, floor = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local regrow, factor, cut_interval = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local argument, ttl_ms, reach = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local saved = redis.call('HMGET', KEYS[1], 'tat', 'rate', 'grown', 'cut')
local function sane(text, low, high, absent)
  local value = tonumber(text)
  if value == nil or value ~= value or value < low or value > high then
    return absent
  end
  return value
end
local tat = sane(saved[1], -math.huge, now + reach, now)
local rate = math.min(ceiling, math.max(floor, sane(saved[2], -math.huge, math.huge, ceiling)))
local grown = sane(saved[3], -math.huge, now + reach, now)
local cut = sane(saved[4], -math.huge, now, 0)
if now > grown then
  rate = math.min(ceiling, rate + regrow * (now - grown))
  grown = now
end
local function save()
  redis.call('HSET', KEYS[1], 'tat', string.format('%.6f', tat),
             'rate', string.format('%.6f', rate), 'grown', string.format('%.6f', grown),
             'cut', string.format('%.6f', cut))
  redis.call('PEXPIRE', KEYS[1], ttl_ms)
end
local milli = math.floor(rate * 1000 + 0.5)
if ARGV[1] == 'acquire' then
  local interval = 1 / rate
  local next_tat = math.max(tat, now) + interval
  local wait = math.max(0, next_tat - burst * interval - now)
  if argument >= 0 and wait > argument then
    return {0, math.ceil(wait * 1000000), milli}
  end
  tat = next_tat
  save()
  return {1, math.ceil(wait * 1000000), milli}
end
if ARGV[1] == 'throttle' then
  local cutting = now - cut >= cut_interval
  if cutting then
    rate = math.max(floor, rate * factor)
    cut = now
  end
  local resume = now + argument
  tat = math.max(tat, resume + (burst - 1) / rate)
  grown = math.max(grown, resume)
  save()
  return {cutting and 1 or 0, 0, math.floor(rate * 1000 + 0.5)}
end
return {1, 0, milli}
"""


class RedisLimiter(Limiter):
    """One budget per key for the whole deployment, in Redis; the in-process limiter while
    Redis does not answer (each process then paces on its own, up to the ceiling)."""

    def __init__(
        self, link: RedisLink, rule: BudgetRule, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        super().__init__(rule, sleep)
        self._link = link
        self._local = AdaptiveLimiter(rule, sleep=sleep)
        self._script = link.client.register_script(BUDGET_SCRIPT)

    def reserve(self, key: str, max_wait: float | None) -> float | None:
        reply = self._run(key, 'acquire', -1.0 if max_wait is None else max_wait)
        if reply is None:
            return self._local.reserve(key, max_wait)
        granted, wait_us, _ = reply
        return wait_us / 1e6 if granted else None

    def throttled(self, key: str, retry_after: float | None = None) -> None:
        if not self.enabled:
            return
        pause = min(max(retry_after or 0.0, 0.0), self.rule.max_pause_s)
        reply = self._run(key, 'throttle', pause)
        if reply is None:
            self._local.throttled(key, retry_after)
        elif reply[0]:
            RATE_BUDGET_CUTS.inc()

    def rate(self, key: str) -> float:
        if not self.enabled:
            return 0.0
        reply = self._run(key, 'peek', 0.0)
        return self._local.rate(key) if reply is None else reply[2] / 1000

    def _run(self, key: str, op: str, argument: float) -> list[int] | None:
        rule = self.rule
        args: list[str | float] = [
            op,
            rule.ceiling,
            rule.burst,
            rule.floor,
            rule.regrow_per_s,
            rule.cut_factor,
            rule.cut_interval_s,
            argument,
            int(rule.idle_s * 1000),
            rule.reach_s,
        ]
        try:
            # {granted or cut, wait in µs, rate in calls per 1000 s}: BUDGET_SCRIPT's reply
            reply: list[int] = self._link.call(
                lambda client: self._script(keys=[budget_name(key)], args=args, client=client)
            )
        except Unavailable:
            STATE_FALLBACKS.labels('limiter').inc()
            return None
        return reply
