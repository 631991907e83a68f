"""make docker-test, second half: run a built relay image and check it end to end.

Starts the SpyCloud simulator and the local JWKS issuer (HTTPS, private CA) on 127.0.0.1,
runs the image with --network host (the relay listens on 127.0.0.1:<free port>, nothing
leaves loopback), checks /version, /watchdog, a full /observe/observables lookup with a
freshly signed token, that the relay runs as a non-root user on a read-only root file
system, that the image holds the package only (no tests, simulator or build tools), that
its `relay` command runs, and that its HEALTHCHECK
turns healthy. Then removes the container and stops the simulator, also on failure.

    .venv/bin/python docker/e2e.py --image spycloud-xdr-relay:test [--container NAME]

Exit status 0 when every check passed, 1 otherwise.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

CODE = Path(__file__).resolve().parent.parent / 'code'
sys.path.insert(0, str(CODE))

from simulator import DEFAULT_API_KEY, mint_token_from_state  # noqa: E402
from spycloud_relay import config  # noqa: E402  (the relay's own settings module: its VERSION)

EMAIL = 'r5c2@docker.example'  # the simulator answers exactly 5 records for local part r5c2
EXPECTED_SIGHTINGS = 5
CA_IN_CONTAINER = '/run/relay/jwks-ca.pem'
START_TIMEOUT_S = 60
HEALTHY_TIMEOUT_S = 60


def say(message):
    print(f'docker-test: {message}', flush=True)


class Failed(Exception):
    """A check that the rest of the run depends on failed."""


class Checks:
    def __init__(self):
        self.passed, self.failed = [], []

    def check(self, name, ok, detail=''):
        (self.passed if ok else self.failed).append(name)
        line = f'ok    {name}' if ok else f'FAIL  {name}'
        say(f'{line}{": " + detail if detail else ""}')
        return ok


def docker(*args, check=True, timeout=120):
    result = subprocess.run(['docker', *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise Failed(f'docker {" ".join(args[:2])} failed: {result.stderr.strip()}')
    return result


def http(method, url, headers=None, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header('Content-Type', 'application/json')
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def as_json(raw):
    try:
        return json.loads(raw)
    except ValueError:
        return None


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def start_simulator(workdir):
    state_dir = workdir / 'state'
    out, err = workdir / 'simulator.out', workdir / 'simulator.err'
    with open(out, 'w') as stdout, open(err, 'w') as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                '-m',
                'simulator',
                '--spycloud-port',
                '0',
                '--jwks-port',
                '0',
                '--state-dir',
                str(state_dir),
                '--xdr-port',
                '0',
            ],
            cwd=CODE,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = out.read_text().partition('\n')
        if line[1]:
            return process, json.loads(line[0])
        if process.poll() is not None:
            break
        time.sleep(0.1)
    stop_process(process)
    raise Failed(f'the simulator did not start: {err.read_text()[-2000:]}')


def stop_process(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def container_state(name):
    result = docker('inspect', '--format', '{{json .State}}', name, check=False)
    return json.loads(result.stdout) if result.returncode == 0 else {}


def wait_until_serving(name, base):
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not container_state(name).get('Running'):
            raise Failed('the container stopped')
        try:
            status, _ = http('GET', f'{base}/watchdog', {'Health-Check': 'start'}, timeout=2)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise Failed(f'the relay did not answer on {base} within {START_TIMEOUT_S} s')


def run(args, checks, workdir):
    simulator, info = start_simulator(workdir)
    try:
        say(f'simulator at {info["spycloud_url"]}, JWKS issuer at https://{info["jwks_host"]}')
        ca = workdir / 'jwks-ca.pem'
        shutil.copyfile(info['ca_pem_path'], ca)
        ca.chmod(0o644)  # readable by the container's non-root user
        port = free_port()
        base = f'http://127.0.0.1:{port}'
        docker(
            'run',
            '--detach',
            '--name',
            args.container,
            '--network',
            'host',
            '--read-only',
            '--tmpfs',
            '/tmp',
            '--cap-drop',
            'ALL',
            '--security-opt',
            'no-new-privileges',
            '--health-interval',
            '2s',
            '--health-retries',
            '3',
            '--health-start-period',
            '30s',
            '--volume',
            f'{ca}:{CA_IN_CONTAINER}:ro',
            '--env',
            f'GUNICORN_BIND=127.0.0.1:{port}',
            '--env',
            f'PORT={port}',
            '--env',
            f'SPYCLOUD_API_URL={info["spycloud_url"]}',
            '--env',
            f'ALLOWED_JWKS_HOSTS={info["jwks_host"]}',
            '--env',
            f'REQUESTS_CA_BUNDLE={CA_IN_CONTAINER}',
            args.image,
        )
        say(f'container {args.container} started from {args.image}, relay at {base}')
        wait_until_serving(args.container, base)
        check_all(args, checks, info, base)
        check_sync(args, checks, info)
    finally:
        stop_process(simulator)


def check_sync(args, checks, info):
    """`docker run IMAGE sync --once` against the simulator's SpyCloud and its fake XDR, on
    a read-only root file system (its checkpoint in /tmp): incidents imported, exit 0."""
    done = docker(
        'run',
        '--rm',
        '--network',
        'host',
        '--read-only',
        '--tmpfs',
        '/tmp',
        '--cap-drop',
        'ALL',
        '--env',
        f'SPYCLOUD_API_URL={info["spycloud_url"]}',
        '--env',
        f'SPYCLOUD_API_KEY={DEFAULT_API_KEY}',
        '--env',
        f'XDR_API_URL={info["xdr_url"]}',
        '--env',
        f'XDR_CLIENT_ID={info["xdr_client_id"]}',
        '--env',
        f'XDR_CLIENT_PASSWORD={info["xdr_client_password"]}',
        args.image,
        'sync',
        '--once',
        check=False,
        timeout=300,
    )
    lines = done.stdout.strip().splitlines()
    try:
        summary = json.loads(lines[-1]) if lines else {}
    except ValueError:
        summary = {}
    checks.check(
        'docker run IMAGE sync --once imports the exposures into XDR',
        done.returncode == 0 and summary.get('incidents_created', 0) > 0,
        f'exit {done.returncode}: ' + (lines[-1][:300] if lines else done.stderr.strip()[-300:]),
    )


def check_all(args, checks, info, base):
    user = docker('inspect', '--format', '{{.Config.User}}', args.image).stdout.strip()
    uid = docker('exec', args.container, 'id', '-u').stdout.strip()
    status1 = docker('exec', args.container, 'cat', '/proc/1/status').stdout
    pid1_uid = next(
        (line.split()[1] for line in status1.splitlines() if line.startswith('Uid:')), '?'
    )
    checks.check(
        'runs as a non-root user',
        user not in ('', '0', 'root') and uid != '0' and pid1_uid not in ('0', '?'),
        f'USER {user or "(none)"}, exec uid {uid}, gunicorn master uid {pid1_uid}',
    )

    status, raw = http('POST', f'{base}/version')
    checks.check(
        'POST /version',
        status == 200 and as_json(raw) == {'version': config.VERSION},
        f'HTTP {status} {raw[:200].decode(errors="replace").strip()}',
    )

    probe = f'docker-test-{os.getpid()}'
    status, raw = http('GET', f'{base}/watchdog', {'Health-Check': probe})
    checks.check(
        'GET /watchdog',
        status == 200 and as_json(raw) == {'data': probe},
        f'HTTP {status} {raw[:200].decode(errors="replace").strip()}',
    )

    token = mint_token_from_state(info['state_dir'], aud=base, key=info['api_key'])
    started = time.monotonic()
    status, raw = http(
        'POST',
        f'{base}/observe/observables',
        {'Authorization': f'Bearer {token}'},
        [{'type': 'email', 'value': EMAIL}],
    )
    took_ms = (time.monotonic() - started) * 1000
    answer = as_json(raw) or {}
    data = answer.get('data') if isinstance(answer, dict) else None
    counts = {
        kind: (data or {}).get(kind, {}).get('count')
        for kind in ('sightings', 'indicators', 'relationships')
    }
    checks.check(
        'POST /observe/observables through the simulator and the JWKS issuer',
        status == 200 and not answer.get('errors') and counts['sightings'] == EXPECTED_SIGHTINGS,
        f'HTTP {status} in {took_ms:.0f} ms, {EMAIL}: '
        + ', '.join(f'{count} {kind}' for kind, count in counts.items())
        + (f', errors {answer.get("errors")}' if answer.get('errors') else ''),
    )

    listing = docker(
        'exec',
        args.container,
        'sh',
        '-c',
        'for c in gcc cc make pipenv pytest pip pip3; do '
        '[ -x "/opt/relay/bin/$c" ] || command -v "$c" >/dev/null && echo "tool:$c"; done; '
        'python3 -c "import importlib.util as u; '
        "print(*(n for n in ('simulator', 'devcommands', 'demo', 'localrelay', 'tests', "
        "'conftest') if u.find_spec(n)))\"; "
        'ls -d /app 2>/dev/null; true',
    ).stdout.split()
    checks.check(
        'image holds the package only: no tests, simulator, developer tools or build tools',
        not listing,
        f'unwanted: {" ".join(listing)}' if listing else 'only spycloud_relay',
    )
    help_text = docker('exec', args.container, 'relay', '--help').stdout
    commands = re.findall(r'^  (\w[\w-]*)', help_text.partition('Commands:')[2], re.MULTILINE)
    checks.check(
        "the image's relay command has its commands, not the developer ones",
        {'lookup', 'check'} <= set(commands) and not {'simulator', 'token'} & set(commands),
        f'commands: {" ".join(commands)}',
    )

    deadline, health = time.monotonic() + HEALTHY_TIMEOUT_S, {}
    while time.monotonic() < deadline:
        health = container_state(args.container).get('Health') or {}
        if health.get('Status') in ('healthy', 'unhealthy'):
            break
        time.sleep(1)
    last = (health.get('Log') or [{}])[-1]
    checks.check(
        'HEALTHCHECK turns healthy',
        health.get('Status') == 'healthy',
        f'status {health.get("Status")}, last probe: exit {last.get("ExitCode")}, '
        f'{(last.get("Output") or "").strip()[:200]}',
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--image', required=True)
    parser.add_argument('--container', default=f'spycloud-relay-e2e-{os.getpid()}')
    args = parser.parse_args()
    checks = Checks()
    workdir = Path(tempfile.mkdtemp(prefix='relay-docker-e2e.'))
    try:
        run(args, checks, workdir)
    except (Failed, subprocess.TimeoutExpired, OSError) as error:
        checks.check('the relay container starts and answers', False, str(error))
    finally:
        logs = docker('logs', '--tail', '40', args.container, check=False)
        if checks.failed and logs.returncode == 0:
            say('last lines of the container log:')
            print((logs.stdout + logs.stderr).rstrip(), flush=True)
        docker('rm', '--force', '--volumes', args.container, check=False)
        shutil.rmtree(workdir, ignore_errors=True)
    if checks.failed:
        say(f'{len(checks.failed)} of {len(checks.passed) + len(checks.failed)} checks failed')
        return 1
    say(f'all {len(checks.passed)} checks passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
