"""Run the relay under gunicorn on loopback, as in production, for the demo and the benchmarks."""

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
APP = 'spycloud_relay.app:create_app()'  # what the image's CMD serves
CONFIG = 'python:spycloud_relay.gunicorn_conf'  # the image's gunicorn settings (a module)


def free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def wait_until_up(url, process, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f'gunicorn exited with code {process.returncode}; see its log above')
        try:
            if requests.get(url + '/watchdog', headers={'Health-Check': 'up'}, timeout=1).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise SystemExit(f'the relay did not come up at {url} within {seconds} s')


@contextmanager
def gunicorn_relay(spycloud, issuer, port=None, output=None, **env):
    """The relay at ``http://127.0.0.1:<port>``, pointed at a simulator and a JWKS issuer.

    ``output``: a file that gets gunicorn's standard output and error (its JSON logs).
    ``env``: environment variables for the relay; JWT_AUDIENCE is the URL unless given, so
    tokens minted with ``aud=<url>`` pass.
    """
    port = port or free_port()
    url = f'http://127.0.0.1:{port}'
    settings = dict(
        SPYCLOUD_API_URL=spycloud.url,
        ALLOWED_JWKS_HOSTS=issuer.jwks_host,
        REQUESTS_CA_BUNDLE=issuer.ca_pem_path,
        GUNICORN_BIND=f'127.0.0.1:{port}',
        JWT_AUDIENCE=url,
        PYTHONUNBUFFERED='1',
    )
    settings.update({name: str(value) for name, value in env.items()})
    process = subprocess.Popen(
        [sys.executable, '-m', 'gunicorn', '--config', CONFIG, APP],
        cwd=HERE,
        env={**os.environ, **settings},
        stdout=output,
        stderr=output,
    )
    try:
        wait_until_up(url, process)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def gunicorn_master(url):
    """The pid of the gunicorn master serving ``url`` (started by ``gunicorn_relay``): the
    process with its GUNICORN_BIND whose parent does not have it."""
    bind = f'GUNICORN_BIND=127.0.0.1:{url.rsplit(":", 1)[1]}'.encode()
    mine = {}
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit():
            try:
                if bind in (entry / 'environ').read_bytes().split(b'\0'):
                    mine[int(entry.name)] = int(process_status(int(entry.name))['PPid'])
            except (OSError, KeyError, ValueError):
                continue
    return next(pid for pid, parent in mine.items() if parent not in mine)


def gunicorn_workers(master_pid):
    """The worker pids of a gunicorn master."""
    children = Path(f'/proc/{master_pid}/task/{master_pid}/children')
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def process_status(pid):
    """The fields of ``/proc/<pid>/status`` (``VmRSS``, ``Threads``, ``PPid``...)."""
    lines = Path(f'/proc/{pid}/status').read_text().splitlines()
    return dict((name, value.strip()) for name, _, value in (line.partition(':') for line in lines))
