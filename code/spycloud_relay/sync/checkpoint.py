"""Where the next sync starts, and the lock that lets one sync run at a time.

The checkpoint is the end of the last window imported without an error: the next run asks
SpyCloud for what changed since then. It lives in Redis when REDIS_URL is set (under a name
HMAC'd with a key derived from the tenant's API key, as the state's entries are: state/crypto.py;
the value is a timestamp, stored in clear), else in a JSON file replaced atomically, so that a
crash mid-write leaves the previous checkpoint. A checkpoint that cannot be read or written is a
SyncError: never a silent fallback, which would import again, or skip, a window.

``checkpoints`` and ``sync_lock`` choose by REDIS_URL; the lock itself is sync/lock.py's.
"""

import contextlib
import json
import os
import tempfile
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from spycloud_relay.config import Settings
from spycloud_relay.state.crypto import tenant_keys
from spycloud_relay.state.link import RedisLink, Unavailable
from spycloud_relay.sync.errors import SyncError
from spycloud_relay.sync.lock import NAMESPACE, FileHold, RedisHold, SyncLock
from spycloud_relay.sync.settings import SyncSettings

__all__ = [
    'Checkpoints',
    'FileCheckpoint',
    'RedisCheckpoint',
    'SyncError',
    'SyncLock',
    'checkpoints',
    'sync_lock',
]
LOCK_TTL_S = 120.0
REDIS_TIMEOUT_MIN_S = 1.0  # a batch job waits longer for Redis than a lookup does


class Checkpoints(Protocol):
    """Where the last window imported without an error ended."""

    def read(self) -> datetime | None: ...

    def write(self, moment: datetime) -> None: ...


def to_text(moment: datetime) -> str:
    """UTC, ISO 8601 with ``Z``; a naive moment is a bug of the caller (which zone?)."""
    if moment.tzinfo is None:
        raise ValueError('a checkpoint is an aware datetime')
    return moment.astimezone(UTC).isoformat().replace('+00:00', 'Z')


def from_text(text: object) -> datetime | None:
    """The moment ``to_text`` wrote; None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo is not None else None


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


class FileCheckpoint:
    """``{"checkpoint": "<ISO>"}`` in a file; no file yet: no checkpoint (a first run)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def read(self) -> datetime | None:
        try:
            text = self.path.read_text(encoding='utf-8')
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            reason = _reason(error) if isinstance(error, OSError) else 'not UTF-8 text'
            raise SyncError(f'the sync checkpoint {self.path} cannot be read: {reason}') from None
        try:
            doc: Any = json.loads(text)
        except ValueError:
            doc = None
        moment = from_text(doc.get('checkpoint')) if isinstance(doc, dict) else None
        if moment is None:
            raise SyncError(
                f'the sync checkpoint {self.path} holds no checkpoint: fix or delete it '
                '(the next run then starts SYNC_LOOKBACK_DAYS back)'
            )
        return moment

    def write(self, moment: datetime) -> None:
        """A temporary file beside it, synced, renamed over it: all or nothing."""
        text = json.dumps({'checkpoint': to_text(moment)})
        try:
            self._replace(text)
        except OSError as error:
            raise SyncError(
                f'the sync checkpoint {self.path} cannot be written: {_reason(error)}'
            ) from None

    def _replace(self, text: str) -> None:
        fd, temporary = tempfile.mkstemp(
            dir=self.path.parent, prefix=f'.{self.path.name}.', suffix='.tmp'
        )
        try:
            with os.fdopen(fd, 'w', encoding='utf-8') as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        with contextlib.suppress(OSError):  # the rename itself, on disk (not every system can)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)


class RedisCheckpoint:
    """The checkpoint of one tenant (its API key) and XDR destination (``scope``) in Redis."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        scope: tuple[str, ...] = (),
        link: RedisLink | None = None,
    ) -> None:
        if not api_key:
            raise ValueError('a Redis checkpoint is named with the API key')
        self._link = link or RedisLink(url, REDIS_TIMEOUT_MIN_S)
        self.name = tenant_keys(api_key).name(NAMESPACE, ('checkpoint', *scope))

    def read(self) -> datetime | None:
        stored = self._call('read', lambda client: client.get(self.name))
        if stored is None:
            return None
        text = stored.decode('utf-8', 'replace') if isinstance(stored, bytes) else stored
        moment = from_text(text)
        if moment is None:
            raise SyncError(
                f'the sync checkpoint in Redis at {self._link.where} ({self.name}) is no '
                'moment: delete it (the next run then starts SYNC_LOOKBACK_DAYS back)'
            )
        return moment

    def write(self, moment: datetime) -> None:
        text = to_text(moment)
        self._call('write', lambda client: client.set(self.name, text))

    def _call(self, what: str, operation: Any) -> Any:
        try:
            return self._link.call(operation)
        except Unavailable:
            raise SyncError(
                f'Redis at {self._link.where} does not answer: the sync cannot {what} '
                'its checkpoint'
            ) from None


@lru_cache(maxsize=8)
def _link(url: str, timeout_s: float) -> RedisLink:
    """One link (a pool, an outage state) per Redis for the checkpoint and the lock."""
    return RedisLink(url, max(timeout_s, REDIS_TIMEOUT_MIN_S))


def _scope(sync: SyncSettings) -> tuple[str, ...]:
    """The XDR destination: one SpyCloud key synced into two XDR organisations has two
    checkpoints and two locks."""
    return (sync.xdr_api_url, sync.xdr_client_id)


def checkpoints(settings: Settings, sync: SyncSettings) -> Checkpoints:
    """In Redis with REDIS_URL, else in SYNC_CHECKPOINT_FILE."""
    if settings.redis_url:
        link = _link(settings.redis_url, settings.redis_timeout_s)
        return RedisCheckpoint(
            settings.redis_url, sync.spycloud_api_key, scope=_scope(sync), link=link
        )
    return FileCheckpoint(sync.checkpoint_file)


def sync_lock(settings: Settings, sync: SyncSettings, ttl: float = LOCK_TTL_S) -> SyncLock:
    """A lease in Redis with REDIS_URL (renewed every third of ``ttl``), else a file lock."""
    if settings.redis_url:
        link = _link(settings.redis_url, settings.redis_timeout_s)
        hold = RedisHold(link, sync.spycloud_api_key, scope=_scope(sync), ttl=ttl)
        return SyncLock(hold, renew_every_s=ttl / 3)
    return SyncLock(FileHold(sync.checkpoint_file))
