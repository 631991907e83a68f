"""A real redis-server for the state tests, on a free loopback port, stopped in teardown.

No mock and no skip: without redis-server the tests fail, saying how to get it (`make test`
installs Debian's redis-server when it is missing).
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

from localrelay import free_port


def pings(port: int, password: str = '') -> bool:
    """Whether a redis-server answers PING on ``port`` (after AUTH, with a password)."""
    request = (f'AUTH {password}\r\n' if password else '') + 'PING\r\n'
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=0.5) as conn:
            conn.sendall(request.encode())
            answer = b''
            while b'+PONG' not in answer and len(answer) < 256:
                chunk = conn.recv(64)
                if not chunk:
                    break
                answer += chunk
            return b'+PONG' in answer
    except OSError:
        return False


class RedisServer:
    """``start()``, ``stop()`` (a kill, as an outage would be) and ``start()`` again, on the
    same port; ``url`` for the relay."""

    def __init__(self, password: str = '') -> None:
        self.binary = shutil.which('redis-server')
        if self.binary is None:
            raise RuntimeError(
                'redis-server is not installed: `make test` installs it '
                '(apt-get install redis-server)'
            )
        self.port, self.password = free_port(), password
        self._dir = tempfile.TemporaryDirectory(prefix='relay-redis-')
        self._process = None

    @property
    def url(self) -> str:
        auth = f':{self.password}@' if self.password else ''
        return f'redis://{auth}127.0.0.1:{self.port}/0'

    def start(self) -> 'RedisServer':
        command = [
            self.binary,
            '--port',
            str(self.port),
            '--bind',
            '127.0.0.1',
            '--save',
            '',
            '--appendonly',
            'no',
            '--dir',
            self._dir.name,
            '--daemonize',
            'no',
            '--loglevel',
            'warning',
        ]
        if self.password:
            command += ['--requirepass', self.password]
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=_real_clock(os.environ),
        )
        deadline = time.monotonic() + 10
        while not pings(self.port, self.password):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f'redis-server did not start on port {self.port}')
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> 'RedisServer':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def _real_clock(environ):
    """The environment without a faked clock (tests/on_dates.py): redis-server does not start
    under libfaketime, and its clock is its own anyway (the rate budget reads only Redis's
    clock, and TTLs count from Redis's now)."""
    return {
        name: value
        for name, value in environ.items()
        if name not in ('LD_PRELOAD', 'FAKETIME') and not name.startswith('FAKETIME_')
    }
