"""The sync's checkpoint, lock and settings (sync/checkpoint.py, sync/lock.py, sync/settings.py):
files and a real redis-server, locks held by other processes that die for real."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis

from redis_server import RedisServer
from spycloud_relay.config import ConfigError, Settings
from spycloud_relay.state.link import RedisLink
from spycloud_relay.sync import checkpoint as checkpoint_module
from spycloud_relay.sync.checkpoint import (
    FileCheckpoint,
    RedisCheckpoint,
    SyncError,
    SyncLock,
    checkpoints,
    sync_lock,
)
from spycloud_relay.sync.lock import FileHold, RedisHold
from spycloud_relay.sync.settings import SyncSettings
from support import wait_until

CODE = Path(__file__).resolve().parents[1]
API_KEY = 'tenant-a-sync-key-5b2f9c01'
OTHER_KEY = 'tenant-b-sync-key-77e0d4aa'
CLIENT_PASSWORD = 'xdr-client-pa55word-0c1d'
MOMENT = datetime(2031, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)
ENV = {
    'SPYCLOUD_API_KEY': API_KEY,
    'XDR_CLIENT_ID': 'client-42f1',
    'XDR_CLIENT_PASSWORD': CLIENT_PASSWORD,
}


def redis_lock(url, api_key=API_KEY, ttl=30.0, scope=()):
    """A lock as one sync process has it: a link of its own, renewed every third of its TTL."""
    hold = RedisHold(RedisLink(url, 1.0), api_key, scope=scope, ttl=ttl)
    return SyncLock(hold, renew_every_s=ttl / 3)


# -- the file checkpoint ---------------------------------------------------------------------


@pytest.mark.pure
def test_a_file_checkpoint_round_trips_and_starts_empty(tmp_path):
    path = tmp_path / 'sync.json'
    checkpoint = FileCheckpoint(path)
    assert checkpoint.read() is None  # a first run
    checkpoint.write(MOMENT)
    assert json.loads(path.read_text()) == {'checkpoint': '2031-05-04T03:02:01.123456Z'}
    assert FileCheckpoint(path).read() == MOMENT
    later = datetime(2031, 5, 4, 5, 2, 1, tzinfo=timezone(timedelta(hours=2)))  # 03:02:01 UTC
    checkpoint.write(later)
    assert checkpoint.read() == later and checkpoint.read().tzinfo == UTC
    assert sorted(p.name for p in tmp_path.iterdir()) == ['sync.json']  # no temporary left
    with pytest.raises(ValueError, match='aware'):
        checkpoint.write(datetime(2031, 5, 4))


@pytest.mark.pure
def test_a_write_that_fails_at_the_rename_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    """A crash mid-write: the temporary file is written, the rename never happens."""
    path = tmp_path / 'sync.json'
    FileCheckpoint(path).write(MOMENT)

    def crash(source, target):
        raise OSError(5, 'Input/output error')

    monkeypatch.setattr(checkpoint_module.os, 'replace', crash)
    with pytest.raises(SyncError) as failed:
        FileCheckpoint(path).write(MOMENT + timedelta(hours=1))
    assert str(path) in failed.value.message and 'Input/output error' in failed.value.message
    monkeypatch.undo()
    assert FileCheckpoint(path).read() == MOMENT
    assert sorted(p.name for p in tmp_path.iterdir()) == ['sync.json']


@pytest.mark.pure
@pytest.mark.parametrize(
    'content',
    [
        b'not json',
        b'',
        b'[]',
        b'{"checkpoint": 1700000000}',
        b'{"checkpoint": "yesterday"}',
        b'{"checkpoint": "2031-05-04T03:02:01"}',  # no zone: which moment?
        b'{"when": "2031-05-04T03:02:01Z"}',
        b'\xff\xfe{"checkpoint"',
    ],
)
def test_a_corrupt_checkpoint_file_is_an_error_naming_it(tmp_path, content):
    path = tmp_path / 'sync.json'
    path.write_bytes(content)
    with pytest.raises(SyncError) as failed:
        FileCheckpoint(path).read()
    assert str(path) in failed.value.message and '\n' not in failed.value.message
    assert failed.value.code == 'sync error'


@pytest.mark.pure
def test_an_unreadable_or_unwritable_checkpoint_file_is_an_error_naming_it(tmp_path):
    directory = tmp_path / 'a-directory'
    directory.mkdir()
    with pytest.raises(SyncError, match=f'{directory} cannot be read: Is a directory'):
        FileCheckpoint(directory).read()
    missing = tmp_path / 'no-such-dir' / 'sync.json'
    with pytest.raises(SyncError, match=f'{missing} cannot be written: No such file'):
        FileCheckpoint(missing).write(MOMENT)


# -- the Redis checkpoint --------------------------------------------------------------------


def test_a_redis_checkpoint_round_trips_under_a_name_hmacd_by_the_tenants_key(fresh_redis):
    checkpoint = RedisCheckpoint(fresh_redis.url, API_KEY)
    assert checkpoint.read() is None
    checkpoint.write(MOMENT)
    assert RedisCheckpoint(fresh_redis.url, API_KEY).read() == MOMENT
    client = redis.Redis.from_url(fresh_redis.url)
    (name,) = client.keys()
    assert name.startswith(b'relay:sync:') and API_KEY.encode() not in name
    assert client.get(name) == b'2031-05-04T03:02:01.123456Z'  # a timestamp, in clear
    assert client.ttl(name) == -1  # no expiry: a checkpoint is kept


def test_redis_checkpoints_are_separate_per_tenant_and_destination(fresh_redis):
    one = RedisCheckpoint(fresh_redis.url, API_KEY)
    other = RedisCheckpoint(fresh_redis.url, OTHER_KEY)
    elsewhere = RedisCheckpoint(fresh_redis.url, API_KEY, scope=('https://x.example', 'id'))
    one.write(MOMENT)
    assert other.read() is None and elsewhere.read() is None
    other.write(MOMENT - timedelta(days=3))
    elsewhere.write(MOMENT + timedelta(days=3))
    assert one.read() == MOMENT
    assert other.read() == MOMENT - timedelta(days=3)
    assert elsewhere.read() == MOMENT + timedelta(days=3)
    assert len(redis.Redis.from_url(fresh_redis.url).keys()) == 3


def test_a_redis_checkpoint_that_is_no_moment_is_an_error(fresh_redis):
    checkpoint = RedisCheckpoint(fresh_redis.url, API_KEY)
    redis.Redis.from_url(fresh_redis.url).set(checkpoint.name, b'\x00junk')
    with pytest.raises(SyncError, match=f'{checkpoint.name}.* is no moment'):
        checkpoint.read()


def test_a_redis_that_fails_is_an_error_never_a_fallback():
    password = 'redis-pa55word-9e'
    with RedisServer(password=password) as server:
        checkpoint = RedisCheckpoint(server.url, API_KEY)
        checkpoint.write(MOMENT)
        server.stop()
        for attempt in (checkpoint.read, lambda: checkpoint.write(MOMENT)):
            with pytest.raises(SyncError) as failed:
                attempt()
            message = failed.value.message
            assert 'does not answer' in message and f'127.0.0.1:{server.port}' in message
            assert password not in message and API_KEY not in message


def test_the_factories_choose_redis_or_files_by_redis_url(fresh_redis, tmp_path):
    sync = SyncSettings.from_env(dict(ENV, SYNC_CHECKPOINT_FILE=str(tmp_path / 'c.json')))
    chosen = checkpoints(Settings(), sync)
    assert isinstance(chosen, FileCheckpoint) and chosen.path == tmp_path / 'c.json'
    shared = Settings(redis_url=fresh_redis.url)
    checkpoints(shared, sync).write(MOMENT)
    assert not (tmp_path / 'c.json').exists()
    assert checkpoints(shared, sync).read() == MOMENT
    elsewhere = replace(sync, xdr_api_url='https://visibility.eu.amp.cisco.com')
    assert checkpoints(shared, elsewhere).read() is None  # another XDR: its own checkpoint
    with sync_lock(shared, sync, ttl=5.0):
        assert not sync_lock(shared, sync).try_acquire()
        assert sync_lock(shared, elsewhere).try_acquire()
    with sync_lock(Settings(), sync) as lock:
        assert lock.held and (tmp_path / 'c.json.lock').exists()


# -- the Redis lock --------------------------------------------------------------------------


def test_two_locks_on_one_redis_one_acquires(fresh_redis):
    one, other = redis_lock(fresh_redis.url), redis_lock(fresh_redis.url)
    assert one.try_acquire()
    assert not other.try_acquire()
    with pytest.raises(SyncError, match='another sync is running'):
        with other:
            pass
    assert redis_lock(fresh_redis.url, OTHER_KEY).try_acquire()  # another tenant: its own
    one.release()
    with other:
        assert other.held and not one.try_acquire()
    assert not other.held and one.try_acquire()
    one.release()


def test_a_holder_that_dies_frees_the_lock_after_its_ttl(fresh_redis):
    """The holder is another process, killed: nobody gives the lease back, its TTL ends it."""
    holder = _hold_in_another_process(
        f'from spycloud_relay.state.link import RedisLink\n'
        f'from spycloud_relay.sync.lock import RedisHold, SyncLock\n'
        f'hold = RedisHold(RedisLink({fresh_redis.url!r}, 1.0), {API_KEY!r}, ttl=1.0)\n'
        f'lock = SyncLock(hold, renew_every_s=1 / 3)\n'
    )
    with holder:
        waiting = redis_lock(fresh_redis.url)
        assert not waiting.try_acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert wait_until(waiting.try_acquire)
    waiting.release()


def test_renewal_keeps_a_lock_past_its_ttl(fresh_redis):
    client = redis.Redis.from_url(fresh_redis.url)
    with redis_lock(fresh_redis.url, ttl=0.6) as lock:
        (name,) = client.keys()
        token = client.get(name)
        time.sleep(2.0)  # more than three TTLs
        assert client.get(name) == token and not lock.lost
        assert not redis_lock(fresh_redis.url).try_acquire()
        renewals = client.info('commandstats')['cmdstat_evalsha']['calls']
        assert renewals >= 3
    assert client.keys() == []  # given back on exit
    assert redis_lock(fresh_redis.url).try_acquire()


def test_a_redis_that_fails_during_a_run_loses_the_lock():
    with RedisServer() as server:
        lock = redis_lock(server.url, ttl=0.6)
        assert lock.try_acquire() and not lock.lost
        server.stop()
        wait_until(lambda: lock.lost)
        lock.release()  # its TTL frees it; no error
        assert not lock.held
        with pytest.raises(SyncError, match=f'Redis at redis://127.0.0.1:{server.port}/0 does'):
            redis_lock(server.url).try_acquire()


# -- the file lock ---------------------------------------------------------------------------


def test_two_file_locks_in_two_processes_one_acquires(tmp_path):
    checkpoint_file = tmp_path / 'sync.json'
    holder = _hold_in_another_process(
        'from spycloud_relay.sync.lock import FileHold, SyncLock\n'
        f'lock = SyncLock(FileHold({str(checkpoint_file)!r}))\n'
    )
    with holder:
        waiting = SyncLock(FileHold(checkpoint_file))
        assert not waiting.try_acquire()
        with pytest.raises(SyncError, match=f'holds the lock in {checkpoint_file}.lock'):
            waiting.__enter__()
        holder.send_signal(signal.SIGKILL)  # the system frees a dead holder's flock
        holder.wait()
    with waiting:
        assert waiting.held and not SyncLock(FileHold(checkpoint_file)).try_acquire()
    assert SyncLock(FileHold(checkpoint_file)).try_acquire()


@pytest.mark.pure
def test_a_file_lock_that_cannot_be_opened_is_an_error_naming_it(tmp_path):
    missing = tmp_path / 'no-such-dir' / 'sync.json'
    with pytest.raises(SyncError, match=f'{missing}.lock cannot be taken: No such file'):
        SyncLock(FileHold(missing)).try_acquire()


def _hold_in_another_process(make_lock: str) -> subprocess.Popen:
    """A Python process of this tree that runs ``make_lock`` (defining ``lock``), takes it,
    says so, and holds it until killed; returned once it holds it."""
    script = make_lock + 'assert lock.try_acquire()\nprint("held", flush=True)\ntime.sleep(120)\n'
    process = subprocess.Popen(
        [sys.executable, '-c', 'import time\n' + script],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(CODE)),
    )
    if process.stdout.readline().strip() != 'held':
        process.kill()
        process.wait()
        raise AssertionError('the other process did not take the lock')
    return process


# -- the settings ----------------------------------------------------------------------------


@pytest.mark.pure
def test_the_sync_settings_defaults():
    sync = SyncSettings.from_env(ENV)
    assert (sync.spycloud_api_key, sync.xdr_client_id) == (API_KEY, 'client-42f1')
    assert sync.xdr_client_password == CLIENT_PASSWORD
    assert sync.xdr_api_url == 'https://visibility.amp.cisco.com'
    assert sync.severities == (20, 25, 26, 30) and sync.lookback_days == 7
    assert (sync.tlp, sync.external_id_prefix, sync.bundle_max) == ('amber', 'spycloud-relay', 1000)
    assert sync.checkpoint_file.endswith('spycloud-relay-sync.json')
    assert API_KEY not in repr(sync) and CLIENT_PASSWORD not in repr(sync)


@pytest.mark.pure
def test_the_sync_settings_read_and_normalise_their_values():
    sync = SyncSettings.from_env(
        dict(
            ENV,
            XDR_API_URL=' http://127.0.0.1:8443/ ',  # a local simulator
            SYNC_SEVERITIES='30, 25,25,2',
            SYNC_LOOKBACK_DAYS='365',
            SYNC_TLP='Red',
            SYNC_EXTERNAL_ID_PREFIX='acme-spycloud-2',
            SYNC_BUNDLE_MAX='2000.0',
            SYNC_CHECKPOINT_FILE='/var/lib/relay/sync.json',
            SYNC_BUNDLE_UNKNOWN='ignored',
        )
    )
    assert sync.xdr_api_url == 'http://127.0.0.1:8443' and sync.severities == (2, 25, 30)
    assert (sync.lookback_days, sync.tlp, sync.bundle_max) == (365, 'red', 2000)
    assert sync.external_id_prefix == 'acme-spycloud-2'
    assert sync.checkpoint_file == '/var/lib/relay/sync.json'
    for url in ('http://localhost:9', 'http://[::1]:9', 'https://visibility.eu.amp.cisco.com'):
        assert SyncSettings.from_env(dict(ENV, XDR_API_URL=url)).xdr_api_url == url


BAD_SETTINGS = [
    ('SPYCLOUD_API_KEY', ''),
    ('SPYCLOUD_API_KEY', None),
    ('XDR_CLIENT_ID', '  '),
    ('XDR_CLIENT_PASSWORD', None),
    ('XDR_CLIENT_PASSWORD', f'{CLIENT_PASSWORD}\x07'),
    ('XDR_API_URL', 'http://visibility.amp.cisco.com'),
    ('XDR_API_URL', 'http://10.0.0.8:8080'),
    ('XDR_API_URL', f'https://client:{CLIENT_PASSWORD}@visibility.amp.cisco.com'),
    ('XDR_API_URL', f'https://visibility.amp.cisco.com/?key={API_KEY}'),
    ('XDR_API_URL', f'https://[{CLIENT_PASSWORD}'),
    ('XDR_API_URL', 'https://visibility.amp.cisco.com:https'),
    ('XDR_API_URL', 'ftp://visibility.amp.cisco.com'),
    ('XDR_API_URL', 'visibility.amp.cisco.com'),
    ('SYNC_SEVERITIES', '20,21'),
    ('SYNC_SEVERITIES', '20,,25'),
    ('SYNC_SEVERITIES', 'high'),
    ('SYNC_LOOKBACK_DAYS', '0'),
    ('SYNC_LOOKBACK_DAYS', '366'),
    ('SYNC_LOOKBACK_DAYS', '7.5'),
    ('SYNC_LOOKBACK_DAYS', '²'),
    ('SYNC_TLP', 'clear'),
    ('SYNC_EXTERNAL_ID_PREFIX', 'SpyCloud'),
    ('SYNC_EXTERNAL_ID_PREFIX', 'spycloud_relay'),
    ('SYNC_EXTERNAL_ID_PREFIX', 'x' * 41),
    ('SYNC_BUNDLE_MAX', '0'),
    ('SYNC_BUNDLE_MAX', '2001'),
    ('SYNC_BUNDLE_MAX', 'lots'),
]


@pytest.mark.pure
@pytest.mark.parametrize(('name', 'value'), BAD_SETTINGS)
def test_a_bad_sync_setting_is_one_line_naming_it_and_no_secret(name, value):
    env = {key: text for key, text in dict(ENV, **{name: value}).items() if text is not None}
    with pytest.raises(ConfigError) as failed:
        SyncSettings.from_env(env)
    message = str(failed.value)
    assert message.startswith(name) and '\n' not in message
    assert API_KEY not in message and CLIENT_PASSWORD not in message


@pytest.mark.pure
def test_sync_settings_made_in_code_are_checked_too():
    with pytest.raises(ConfigError, match='SYNC_BUNDLE_MAX must be from 5 to 2000, got 0'):
        SyncSettings(API_KEY, 'client', CLIENT_PASSWORD, bundle_max=0)
    with pytest.raises(ConfigError, match='XDR_CLIENT_PASSWORD is required'):
        SyncSettings(API_KEY, 'client', '')
