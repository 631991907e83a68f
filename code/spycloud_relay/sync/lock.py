"""The sync's lock: one sync at a time per tenant and XDR destination.

With Redis a lease (state/lease.py, strict: no in-process twin) renewed by a thread every third
of its TTL while held, so a run longer than the TTL keeps it and a holder that dies frees it
after the TTL; a renewal that fails (Redis down, the lease expired and taken) makes the lock
``lost``, and the run stops before its next window. Without Redis an ``fcntl.flock`` on
``<checkpoint file>.lock``, which the system frees when its holder dies.
"""

import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

from spycloud_relay.state.lease import RedisLeases
from spycloud_relay.state.link import RedisLink, Unavailable
from spycloud_relay.sync.errors import SyncError

log = logging.getLogger(__name__)
NAMESPACE = 'sync'  # the Redis names: relay:sync:<HMAC>


class Hold(Protocol):
    """What holds the lock: taken without waiting, kept (renewed), given back."""

    where: str

    def take(self) -> bool: ...

    def keep(self) -> bool: ...

    def give_back(self) -> None: ...


class FileHold:
    """An exclusive ``flock`` on ``<checkpoint file>.lock``: the system frees it when the
    process ends, however it ends, so it needs no renewal."""

    def __init__(self, checkpoint_file: str | os.PathLike[str]) -> None:
        self.path = Path(f'{os.fspath(checkpoint_file)}.lock')
        self.where = str(self.path)
        self._fd: int | None = None

    def take(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as error:
            raise SyncError(self._failed(error)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError as error:
            os.close(fd)
            raise SyncError(self._failed(error)) from None
        self._fd = fd
        return True

    def keep(self) -> bool:
        return self._fd is not None

    def give_back(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor frees the flock
            self._fd = None

    def _failed(self, error: OSError) -> str:
        reason = error.strerror or type(error).__name__
        return f'the sync lock {self.path} cannot be taken: {reason}'


class RedisHold:
    """The lock as a strict lease in Redis: one holder across every replica."""

    def __init__(
        self, link: RedisLink, api_key: str, *, scope: tuple[str, ...] = (), ttl: float
    ) -> None:
        if not api_key:
            raise ValueError('a Redis lock is named with the API key')
        self.where = f'Redis at {link.where}'
        self._leases = RedisLeases(link, NAMESPACE, ttl, strict=True)
        self._key, self._secret = ('lock', *scope), api_key
        self._token: str | None = None

    def take(self) -> bool:
        try:
            self._token = self._leases.acquire(self._key, secret=self._secret)
        except Unavailable:
            raise SyncError(
                f'{self.where} does not answer: the sync cannot take its lock'
            ) from None
        return self._token is not None

    def keep(self) -> bool:
        """Renewed: True; lost (expired, taken, or Redis does not answer): False."""
        if self._token is None:
            return False
        try:
            return self._leases.renew(self._key, self._token, secret=self._secret)
        except Unavailable:
            return False

    def give_back(self) -> None:
        if self._token is not None:
            self._leases.release(self._key, self._token, secret=self._secret)
            self._token = None


class SyncLock:
    """One sync at a time. ``try_acquire()`` is False while another holds it; ``with lock:``
    takes it (a SyncError when another holds it) or keeps the one taken, and frees it."""

    def __init__(self, hold: Hold, renew_every_s: float | None = None) -> None:
        self._hold = hold
        self._every = renew_every_s
        self._held = False
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self._held

    @property
    def lost(self) -> bool:
        """The lease could not be renewed: another sync may run now; stop before a window."""
        return self._lost.is_set()

    def try_acquire(self) -> bool:
        if self._held:
            return True
        if not self._hold.take():
            return False
        self._held = True
        self._lost.clear()
        self._stop.clear()
        if self._every is not None:
            self._renewer = threading.Thread(target=self._renew, name='sync-lock', daemon=True)
            self._renewer.start()
        return True

    def release(self) -> None:
        if not self._held:
            return
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        self._hold.give_back()
        self._held = False

    def __enter__(self) -> 'SyncLock':
        if not self.try_acquire():
            raise SyncError(f'another sync is running (it holds the lock in {self._hold.where})')
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _renew(self) -> None:
        """Every ``renew_every_s`` until released; the first renewal that fails loses it."""
        assert self._every is not None
        while not self._stop.wait(self._every):
            try:
                kept = self._hold.keep()
            except Exception:  # whatever failed, the lease is no longer sure
                kept = False
            if not kept:
                self._lost.set()
                log.warning(
                    'the sync lost its lock in %s: it stops before its next window',
                    self._hold.where,
                )
                return
