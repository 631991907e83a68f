"""The adaptive SpyCloud rate budget: in-process on a fake clock (exact), and shared by
workers on a real redis-server (counts, with room; no tight wall-clock bound)."""

import logging
import threading
import time

import pytest
import redis
from prometheus_client import REGISTRY

from redis_server import RedisServer
from simulator.data import DEFAULT_API_KEY
from spycloud_relay.deadline import Deadline, DeadlineReached
from spycloud_relay.spycloud.lookup import key_fingerprint
from spycloud_relay.state import AdaptiveLimiter, BudgetRule, RedisLimiter, RedisLink
from spycloud_relay.state.crypto import budget_name
from support import Clock, email, wait_until

KEY = '0f3c9d1e7a5b2c4d6e8f0a1b2c3d4e5f'  # a key's fingerprint, as the transport passes it


def local(clock, **rule):
    return AdaptiveLimiter(
        BudgetRule(**{'ceiling': 10, 'burst': 1, **rule}), clock=clock, sleep=lambda seconds: None
    )


def shared(url, probe_interval_s=1.0, sleep=lambda seconds: None, **rule):
    """A worker's limiter: its own link to the shared Redis."""
    return RedisLimiter(
        RedisLink(url, 0.05, probe_interval_s=probe_interval_s),
        BudgetRule(**{'ceiling': 10, 'burst': 1, **rule}),
        sleep=sleep,
    )


def test_the_burst_then_one_call_per_interval():
    clock = Clock()
    limiter = local(clock, burst=2)
    assert [limiter.reserve(KEY, None) for _ in range(4)] == pytest.approx([0, 0, 0.1, 0.2])
    assert limiter.reserve('another key', None) == 0.0
    clock.now += 10  # idle: the burst is back
    assert [limiter.reserve(KEY, None) for _ in range(3)] == pytest.approx([0, 0, 0.1])


def test_a_wait_past_the_deadline_is_refused_and_takes_nothing():
    clock = Clock()
    limiter = local(clock, ceiling=1)
    assert limiter.acquire(KEY, Deadline(5)) == 0.0
    with pytest.raises(DeadlineReached):
        limiter.acquire(KEY, Deadline(0.2))
    assert limiter.reserve(KEY, None) == pytest.approx(1.0)  # not 2: the refusal took nothing
    assert AdaptiveLimiter(BudgetRule(ceiling=0)).acquire(KEY, Deadline(0)) == 0.0  # off


def test_acquire_really_waits_on_the_real_clock():
    """The fake clock above proves the arithmetic; this, that a call is held back for real
    (a lower bound, which a slower machine only makes easier to meet)."""
    limiter = AdaptiveLimiter(BudgetRule(ceiling=50, burst=2))
    started = time.monotonic()
    waited = sum(limiter.acquire(KEY) for _ in range(7))
    assert time.monotonic() - started >= waited >= (7 - 2) / 50 * 0.9
    assert limiter.acquire('another key') == 0.0  # a bucket per key


def test_a_429_halves_the_rate_once_per_second_and_it_grows_back():
    clock = Clock()
    limiter = local(clock, regrow_per_s=0.5, floor=0.5)
    cuts = REGISTRY.get_sample_value('relay_rate_budget_cuts_total')
    limiter.throttled(KEY)
    limiter.throttled(KEY)  # another call's 429 of the same moment: the same signal
    assert limiter.rate(KEY) == 5.0
    assert REGISTRY.get_sample_value('relay_rate_budget_cuts_total') - cuts == 1
    clock.now += 4
    assert limiter.rate(KEY) == pytest.approx(7.0)  # +0.5 calls/s per second without a 429
    clock.now += 100
    assert limiter.rate(KEY) == 10.0  # never above the ceiling


def test_the_rate_never_falls_below_the_floor():
    clock = Clock()
    limiter = local(clock, regrow_per_s=0, floor=0.5)
    for _ in range(10):
        clock.now += 1.5
        limiter.throttled(KEY)
    assert limiter.rate(KEY) == 0.5
    assert limiter.reserve(KEY, None) == pytest.approx(0.0)
    assert limiter.reserve(KEY, None) == pytest.approx(2.0)


def test_retry_after_pauses_the_key_and_spends_its_burst():
    clock = Clock()
    limiter = local(clock, burst=5, regrow_per_s=0)
    limiter.throttled(KEY, retry_after=3)
    assert limiter.reserve(KEY, 1.0) is None
    assert limiter.reserve(KEY, None) == pytest.approx(3.0)
    assert limiter.reserve(KEY, None) == pytest.approx(3.2)  # at the halved rate, no burst
    limiter.throttled(KEY, retry_after=10_000)
    assert limiter.reserve(KEY, None) <= 60.5  # a pause is capped


def test_two_workers_on_one_redis_share_one_budget(fresh_redis):
    """Each worker takes calls until its deadline refuses one; over the window both together
    get the budget of one (burst + rate × window), not one each."""
    rule = {'ceiling': 20, 'burst': 4}
    together = grants([shared(fresh_redis.url, sleep=sleep, **rule) for _ in range(2)])
    alone = grants([AdaptiveLimiter(BudgetRule(**rule)) for _ in range(2)])
    budget = 4 + 20 * WINDOW_S  # 19
    assert sum(together) <= budget + 1 and min(together) >= 1
    assert sum(together) >= budget / 2
    assert sum(alone) >= 1.5 * budget  # what two unshared budgets would let through


WINDOW_S = 0.75


def sleep(seconds):
    threading.Event().wait(seconds)


def grants(limiters):
    deadline, counts = Deadline(WINDOW_S), [0] * len(limiters)

    def take(index):
        try:
            for _ in range(1000):
                limiters[index].acquire(KEY, deadline)
                counts[index] += 1
        except DeadlineReached:
            pass

    threads = [threading.Thread(target=take, args=(i,)) for i in range(len(limiters))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return counts


def test_a_429_seen_by_one_worker_cuts_and_pauses_every_worker(fresh_redis):
    first, second = shared(fresh_redis.url), shared(fresh_redis.url)
    first.throttled(KEY, retry_after=5)
    assert second.rate(KEY) == 5.0  # halved; no regrowth before the pause ends
    assert second.reserve(KEY, 0.1) is None  # the pause passes this deadline: refused
    wait = second.reserve(KEY, None)
    assert 2 < wait <= 5  # the rest of the pause, not more: the refusal took nothing


def test_the_shared_rate_grows_back(fresh_redis):
    limiter = shared(fresh_redis.url, regrow_per_s=2)  # from 5 to the ceiling in 2.5 s
    limiter.throttled(KEY)
    limiter.throttled(KEY)
    assert 5.0 <= limiter.rate(KEY) < 7.5  # one cut, and some regrowth of the moments between
    sleep(2.6)
    assert limiter.rate(KEY) == 10.0


def test_the_shared_budget_refuses_past_the_deadline_and_keeps_a_ttl(fresh_redis):
    limiter = shared(fresh_redis.url, ceiling=0.1)  # a call every 10 s
    assert limiter.acquire(KEY, Deadline(5)) == 0.0
    with pytest.raises(DeadlineReached):
        limiter.acquire(KEY, Deadline(0.2))
    assert 5 < limiter.reserve(KEY, None) <= 10  # the refusal took nothing
    client = redis.Redis.from_url(fresh_redis.url)
    assert client.keys() == [budget_name(KEY).encode()]
    assert 0 < client.pttl(budget_name(KEY)) <= 3600_000


def test_redis_failing_falls_back_to_the_process_budget(caplog):
    caplog.set_level(logging.INFO, logger='spycloud_relay.state')
    with RedisServer() as server:
        limiter = shared(server.url, probe_interval_s=0.2, ceiling=1000, burst=1000)
        assert limiter.acquire(KEY) == 0.0
        before = (
            REGISTRY.get_sample_value('relay_state_fallback_total', {'store': 'limiter'}) or 0.0
        )
        server.stop()
        for _ in range(20):
            assert limiter.acquire(KEY, Deadline(1)) == 0.0
        limiter.throttled(KEY, retry_after=0.01)
        assert limiter.rate(KEY) == 500.0  # the process's own budget was cut
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
        assert (
            REGISTRY.get_sample_value('relay_state_fallback_total', {'store': 'limiter'}) - before
            >= 20
        )
        server.start()
        client = redis.Redis.from_url(server.url)

        def in_redis_again():
            limiter.acquire(KEY, Deadline(1))
            return client.exists(budget_name(KEY))

        wait_until(in_redis_again, timeout=5, interval=0.05)  # within a probe interval or so
        assert client.exists(budget_name(KEY))
        assert limiter.rate(KEY) == 1000.0  # Redis's budget, never cut


@pytest.mark.parametrize('junk', ['1e12', 'inf', 'nan', 'soon'])
def test_a_budget_read_from_redis_is_checked_first(make_relay, fresh_redis, junk):
    """A moment far ahead of Redis's clock (junk, or a failover to a replica whose clock is
    behind) must not refuse every lookup of the key with 'deadline exceeded'; ``nan`` must not
    turn pacing off. With one call a minute, the first account is answered and the rest wait
    past the deadline, whatever was saved."""
    relay = make_relay(redis_url=fresh_redis.url, spycloud_rate_limit=1 / 60, spycloud_burst=1)
    client = redis.Redis.from_url(fresh_redis.url)
    name = budget_name(key_fingerprint(DEFAULT_API_KEY))
    client.hset(name, mapping={'tat': junk, 'rate': junk, 'grown': junk, 'cut': junk})
    body = relay.observe([email(f'r3c2@junk{n}.example') for n in range(3)])
    assert body['data']['sightings']['count'] == 3  # one account answered: nothing refused all
    assert {e['code'] for e in body['errors']} == {'deadline exceeded'}  # the rest were paced
