"""One gathering of the dashboard per key and period (tiles/single.py), over HTTP: XDR's five
tiles asked at once cost one gathering's SpyCloud calls, on one relay and on two sharing one
Redis; waiters get a partial picture too; a gatherer that dies frees the lease after its TTL;
a waiter whose deadline comes first says so."""

import threading

import pytest

from simulator import DEFAULT_API_KEY
from spycloud_relay.spycloud.lookup import key_fingerprint
from spycloud_relay.state import RedisLeases, RedisLink
from support import period_windows, windowed_calls
from tile_contract import TILE_IDS


def watchlist_calls(spycloud):
    return [c for c in spycloud.request_log if c['endpoint'] == 'watchlist-records']


def tile_data(relay, tile_id, period):
    response = relay.post('/tiles/tile-data', {'tile_id': tile_id, 'period': period})
    assert response.status_code == 200, response.text
    return response.json()


def all_at_once(asks):
    """Every ``(relay, tile_id, period)`` asked at the same moment, each on a thread of its
    own (as XDR's dashboard does); their answers, in order."""
    start, answers = threading.Barrier(len(asks)), [None] * len(asks)

    def ask(index, relay, tile_id, period):
        start.wait()
        answers[index] = tile_data(relay, tile_id, period)

    threads = [threading.Thread(target=ask, args=(i, *a)) for i, a in enumerate(asks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def hand_held_lease(redis_url, period, ttl):
    """The lease of the simulator key's ``period``, taken as a gatherer would and never given
    back: a gatherer that died."""
    leases = RedisLeases(RedisLink(redis_url, 0.5), 'gatherings', ttl)
    key = ('tiles', key_fingerprint(DEFAULT_API_KEY), period)
    token = leases.acquire(key, secret=DEFAULT_API_KEY)
    assert token is not None
    return leases, key, token


@pytest.fixture
def slow_spycloud(spycloud):
    """50 ms a call, as in the benchmark: a gathering lasts long enough for the tiles to meet."""
    spycloud.latency = 0.05
    return spycloud


def test_five_tiles_at_once_cost_one_gathering(make_relay, slow_spycloud):
    relay = make_relay(spycloud_rate_limit=0)
    answers = all_at_once([(relay, tile_id, 'last_90_days') for tile_id in TILE_IDS])
    assert all('errors' not in a and 'data' in a for a in answers), answers
    assert len(watchlist_calls(slow_spycloud)) == windowed_calls('last_90_days')


def test_five_tiles_at_once_on_two_relays_sharing_redis_cost_one_gathering(
    make_relay, slow_spycloud, fresh_redis
):
    relays = [make_relay(spycloud_rate_limit=0, redis_url=fresh_redis.url) for _ in range(2)]
    asks = [(relays[i % 2], tile_id, 'last_90_days') for i, tile_id in enumerate(TILE_IDS * 2)]
    answers = all_at_once(asks)
    assert all('errors' not in a and 'data' in a for a in answers), answers
    assert len(watchlist_calls(slow_spycloud)) == windowed_calls('last_90_days')


def test_waiters_get_the_holders_partial_picture(make_relay, slow_spycloud):
    relay = make_relay(spycloud_rate_limit=0)
    windows = period_windows('last_30_days')
    first, last = windows[-1]
    # one window fails (a 500 is neither retried nor split): its days are missing
    slow_spycloud.add_fault(500, match=f'since={first.isoformat()}')
    answers = all_at_once([(relay, tile_id, 'last_30_days') for tile_id in TILE_IDS])
    at_once = len(watchlist_calls(slow_spycloud))
    tile_data(relay, TILE_IDS[0], 'last_30_days')  # not cached: a gathering of its own
    assert at_once == len(watchlist_calls(slow_spycloud)) - at_once  # one gathering, not five
    missing, days = (last - first).days + 1, (last - windows[0][0]).days + 1
    for answer in answers:
        (warning,) = answer['errors']
        assert warning['code'] == 'incomplete'
        assert f'The records of {missing} of {days} days' in warning['message']
        assert 'data' in answer


def test_a_gatherer_that_dies_frees_the_lease_after_its_ttl(make_relay, spycloud, fresh_redis):
    relay = make_relay(spycloud_rate_limit=0, redis_url=fresh_redis.url)
    leases, key, _ = hand_held_lease(fresh_redis.url, 'last_24_hours', ttl=1.0)
    answer = tile_data(relay, TILE_IDS[0], 'last_24_hours')  # waits for the lease, then gathers
    assert 'errors' not in answer and 'data' in answer
    assert len(watchlist_calls(spycloud)) == windowed_calls('last_24_hours')
    # the expired lease was taken, then given back by its new holder
    assert leases.holder(key, secret=DEFAULT_API_KEY) is None


def test_a_waiter_whose_deadline_comes_first_says_so(make_relay, spycloud, fresh_redis):
    relay = make_relay(spycloud_rate_limit=0, redis_url=fresh_redis.url, lookup_deadline_s=0.5)
    leases, key, token = hand_held_lease(fresh_redis.url, 'last_24_hours', ttl=60.0)
    answer = tile_data(relay, TILE_IDS[0], 'last_24_hours')
    (error,) = answer['errors']
    assert list(answer) == ['errors'] and error['type'] == 'fatal'
    assert error['code'] == 'deadline exceeded'
    assert 'another request gathered this period' in error['message']
    assert watchlist_calls(spycloud) == []  # it waited: no gathering of its own
    leases.release(key, token, secret=DEFAULT_API_KEY)
    assert 'errors' not in tile_data(relay, TILE_IDS[0], 'last_24_hours')
    assert len(watchlist_calls(spycloud)) == windowed_calls('last_24_hours')
