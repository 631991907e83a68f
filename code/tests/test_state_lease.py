"""The lease (state/lease.py), in-process and on a real redis-server: one holder at a time,
given back only by its holder, freed by its TTL when the holder dies, and Redis failing
falls back to the in-process twin."""

import pytest
import redis
from prometheus_client import REGISTRY

from spycloud_relay import state
from spycloud_relay.config import Settings
from spycloud_relay.spycloud.lookup import key_fingerprint
from spycloud_relay.state import MemoryLeases, RedisLeases, RedisLink, Unavailable
from support import Clock, wait_until

API_KEY = 'tenant-a-spycloud-key-8d1f0e2c'
FINGERPRINT = key_fingerprint(API_KEY)
KEY = ('tiles', FINGERPRINT, 'last_90_days')


def redis_leases(url, ttl=30.0):
    """Leases as one worker process has them: a link of its own."""
    return RedisLeases(RedisLink(url, 0.5), 'gatherings', ttl)


@pytest.mark.pure
def test_an_in_process_lease_has_one_holder_and_only_it_gives_it_back():
    leases = MemoryLeases(10.0, clock=Clock())
    token = leases.acquire(KEY)
    assert token is not None and leases.holder(KEY) == token
    assert leases.acquire(KEY) is None  # held: nobody else takes it
    assert leases.acquire(('tiles', FINGERPRINT, 'last_7_days')) is not None  # another period
    leases.release(KEY, 'not-the-holders-token')
    assert leases.holder(KEY) == token and leases.acquire(KEY) is None
    leases.release(KEY, token)
    assert leases.holder(KEY) is None
    assert leases.acquire(KEY) not in (None, token)


@pytest.mark.pure
def test_an_in_process_lease_expires_after_its_ttl():
    clock = Clock()
    leases = MemoryLeases(10.0, clock=clock)
    dead = leases.acquire(KEY)  # a holder that never gives it back
    clock.now += 9.9
    assert leases.acquire(KEY) is None and leases.holder(KEY) == dead
    clock.now += 0.1
    assert leases.holder(KEY) is None
    alive = leases.acquire(KEY)
    assert alive not in (None, dead)
    leases.release(KEY, dead)  # the dead holder, back late, frees nothing of the new one
    assert leases.holder(KEY) == alive


def test_a_redis_lease_has_one_holder_across_workers(fresh_redis):
    one, other = redis_leases(fresh_redis.url), redis_leases(fresh_redis.url)
    token = one.acquire(KEY, secret=API_KEY)
    assert token is not None
    assert other.acquire(KEY, secret=API_KEY) is None
    assert other.holder(KEY, secret=API_KEY) == token
    other.release(KEY, 'not-the-holders-token', secret=API_KEY)
    assert one.holder(KEY, secret=API_KEY) == token
    one.release(KEY, token, secret=API_KEY)
    assert other.holder(KEY, secret=API_KEY) is None
    assert other.acquire(KEY, secret=API_KEY) is not None


def test_a_redis_lease_is_named_by_the_tenants_key_and_expires(fresh_redis):
    leases = redis_leases(fresh_redis.url, ttl=0.3)
    dead = leases.acquire(KEY, secret=API_KEY)
    client = redis.Redis.from_url(fresh_redis.url)
    (name,) = client.keys()
    assert name.startswith(b'relay:gatherings:') and FINGERPRINT.encode() not in name
    assert 0 < client.pttl(name) <= 300
    wait_until(lambda: leases.holder(KEY, secret=API_KEY) is None)  # its PX ran out
    alive = leases.acquire(KEY, secret=API_KEY)
    assert alive not in (None, dead)
    leases.release(KEY, dead, secret=API_KEY)
    assert leases.holder(KEY, secret=API_KEY) == alive


def test_a_redis_that_does_not_answer_falls_back_to_the_process():
    leases = RedisLeases(RedisLink('redis://127.0.0.1:1/0', 0.05), 'gatherings', 30.0)
    before = REGISTRY.get_sample_value('relay_state_fallback_total', {'store': 'gatherings'}) or 0
    token = leases.acquire(KEY, secret=API_KEY)
    assert token is not None and leases.acquire(KEY, secret=API_KEY) is None
    assert leases.holder(KEY, secret=API_KEY) == token
    leases.release(KEY, token, secret=API_KEY)
    assert leases.acquire(KEY, secret=API_KEY) is not None
    after = REGISTRY.get_sample_value('relay_state_fallback_total', {'store': 'gatherings'})
    assert after - before >= 4


def test_the_factory_chooses_by_redis_url(fresh_redis):
    assert isinstance(state.leases(Settings(), 'gatherings', 5.0), MemoryLeases)
    shared = state.leases(Settings(redis_url=fresh_redis.url), 'gatherings', 5.0)
    assert isinstance(shared, RedisLeases)


@pytest.mark.pure
def test_the_lease_ttl_must_be_positive():
    with pytest.raises(ValueError, match='TILE_LEASE_TTL_S must be greater than 0'):
        Settings(tile_lease_ttl_s=0)


@pytest.mark.pure
def test_the_lease_outlasts_the_deadline():
    """A lease shorter than the deadline would expire under a gathering still running, and a
    second gathering would start: refused in one line naming both settings."""
    with pytest.raises(ValueError) as refused:
        Settings.from_env({'TILE_LEASE_TTL_S': '20', 'LOOKUP_DEADLINE_S': '25'})
    assert str(refused.value) == (
        'TILE_LEASE_TTL_S (20) must be longer than LOOKUP_DEADLINE_S (25): a gathering would '
        'lose its lease while it runs, and another would start'
    )
    assert Settings.from_env({'TILE_LEASE_TTL_S': '26', 'LOOKUP_DEADLINE_S': '25'})


def test_an_in_process_lease_is_renewed_only_by_its_holder():
    clock = Clock()
    leases = MemoryLeases(10.0, clock=clock)
    token = leases.acquire(KEY)
    clock.now += 9.0
    assert leases.renew(KEY, token) and not leases.renew(KEY, 'not-the-holders-token')
    clock.now += 9.0  # 18 s after it was taken: alive, 9 s after its renewal
    assert leases.holder(KEY) == token
    clock.now += 1.0
    assert leases.holder(KEY) is None and not leases.renew(KEY, token)  # expired: lost


def test_a_redis_lease_is_renewed_only_by_its_holder(fresh_redis):
    leases = redis_leases(fresh_redis.url, ttl=0.5)
    token = leases.acquire(KEY, secret=API_KEY)
    client = redis.Redis.from_url(fresh_redis.url)
    (name,) = client.keys()
    client.pexpire(name, 100)  # as if most of its TTL had passed
    assert leases.renew(KEY, token, secret=API_KEY)
    assert 100 < client.pttl(name) <= 500
    assert not leases.renew(KEY, 'not-the-holders-token', secret=API_KEY)
    client.delete(name)  # expired
    taken = redis_leases(fresh_redis.url).acquire(KEY, secret=API_KEY)
    assert not leases.renew(KEY, token, secret=API_KEY)  # lost: nothing of the new holder's
    assert leases.holder(KEY, secret=API_KEY) == taken and client.pttl(name) > 500


def test_a_strict_lease_has_no_in_process_twin():
    leases = RedisLeases(RedisLink('redis://127.0.0.1:1/0', 0.05), 'sync', 30.0, strict=True)
    with pytest.raises(Unavailable):
        leases.acquire(KEY, secret=API_KEY)
    with pytest.raises(Unavailable):
        leases.renew(KEY, 'a-token', secret=API_KEY)
    leases.release(KEY, 'a-token', secret=API_KEY)  # its TTL frees it: nothing to raise
