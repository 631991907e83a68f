"""The relay as the image serves it: gunicorn with gunicorn_conf.py, over real HTTP.

werkzeug's in-process server (the rest of the suite) hides how gunicorn treats slow clients,
header limits and malformed bodies; these tests run against the gunicorn worker itself.
Bounds on time are an order of magnitude above a normal answer (10-50 ms) or named after the
setting they check, plus room for a slow machine.
"""

import json
import os
import re
import runpy
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from gunicorn.http.errors import InvalidResponseHeader, InvalidResponseHeaderName
from gunicorn.workers.ggevent import GeventWorker

import localrelay
from spycloud_relay import serving
from spycloud_relay.api import auth
from support import (
    RelayAt,
    assert_valid_answer,
    docs,
    email,
    send_raw,
    single_error,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
SLOW_SOCKETS = 50
PARTIAL_HEAD = b'POST /observe/observables HTTP/1.1\r\nHost: x\r\n'
ENVELOPE_HEADERS = {'content-type': 'application/json', 'connection': 'close'}


@pytest.fixture(scope='module')
def relay(gunicorn_relay_server):
    return gunicorn_relay_server


def watchdog(relay):
    return requests.get(relay.url + '/watchdog', headers={'Health-Check': 'up'}, timeout=10)


def timed(call, *args, **kwargs):
    started = time.monotonic()
    result = call(*args, **kwargs)
    return result, time.monotonic() - started


def port_of(relay):
    return int(relay.url.rsplit(':', 1)[1])


def not_yet_accepted(port):
    """Connections waiting in the accept queues of the sockets listening on ``port`` (the
    rx_queue of their LISTEN lines in /proc/net/tcp): 0 once the workers took them all."""
    waiting = 0
    for line in Path('/proc/net/tcp').read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f':{port:04X}') and fields[3] == '0A':  # 0A: LISTEN
            waiting += int(fields[4].split(':')[1], 16)
    return waiting


def exchange(relay, request, seconds=10):
    """(status, headers, body) of the relay's answer to raw ``request`` bytes; it must close."""
    answer = send_raw(port_of(relay), request, seconds)
    assert answer, 'the relay hung up without an answer'
    top, _, body = answer.partition(b'\r\n\r\n')
    status_line, *lines = top.decode('latin-1').split('\r\n')
    headers = {}
    for line in lines:
        name, _, value = line.partition(':')
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def relay_refusal(response):
    """The relay's own answer (200 in its envelope), not the server's: its error."""
    assert response.status_code == 200, response.text[:200]
    assert response.headers['Content-Type'] == 'application/json'
    return single_error(response)


def head(path='/health', host='relay', extra=b''):
    return b'POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n%s\r\n' % (
        path.encode(),
        host.encode(),
        extra,
    )


# -- the harness serves what the image serves -------------------------------------------------


def test_the_harness_runs_the_images_command():
    dockerfile = (ROOT / 'Dockerfile').read_text()
    (cmd,) = re.findall(r'^CMD (\[.*\])$', dockerfile, re.MULTILINE)
    assert json.loads(cmd) == ['gunicorn', '--config', localrelay.CONFIG, localrelay.APP]
    conf = runpy.run_module('spycloud_relay.gunicorn_conf')
    assert conf['worker_class'] == 'spycloud_relay.serving.RelayWorker'
    assert conf['worker_connections'] == 1000 and conf['keepalive'] > 0
    assert conf['timeout'] > 25  # above the default LOOKUP_DEADLINE_S
    assert conf['control_socket_disable'] is True  # no socket in a home the image cannot write


def test_gunicorn_lets_the_longest_token_the_relay_takes_through():
    conf = runpy.run_module('spycloud_relay.gunicorn_conf')
    line = len('Authorization: Bearer \r\n') + auth.MAX_TOKEN_BYTES + 1
    assert conf['limit_request_field_size'] >= line


@pytest.mark.parametrize(
    'name, raw, message',
    [
        ('LOOKUP_DEADLINE_S', 'nan', 'LOOKUP_DEADLINE_S must be a finite number, got nan'),
        ('READ_TIMEOUT_S', 'inf', 'READ_TIMEOUT_S must be a finite number, got inf'),
        ('REDIS_TIMEOUT_S', '-inf', 'REDIS_TIMEOUT_S must be a finite number, got -inf'),
        ('SPYCLOUD_RETRIES', 'many', "SPYCLOUD_RETRIES must be an integer, got 'many'"),
        # (WEB_CONCURRENCY is read by gunicorn's own int() before this file: not ours to answer)
        (
            'GUNICORN_WORKER_CONNECTIONS',
            'many',
            "GUNICORN_WORKER_CONNECTIONS must be an integer, got 'many'",
        ),
        ('GUNICORN_TIMEOUT', '1.5', "GUNICORN_TIMEOUT must be an integer, got '1.5'"),
    ],
)
def test_a_bad_setting_stops_the_image_command_with_one_line(name, raw, message):
    """Before any worker starts: one line naming the setting, exit 3, no traceback."""
    port = localrelay.free_port()
    done = subprocess.run(
        [sys.executable, '-m', 'gunicorn', '--config', localrelay.CONFIG, localrelay.APP],
        cwd=localrelay.HERE,
        env={**os.environ, name: raw, 'GUNICORN_BIND': f'127.0.0.1:{port}'},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (3, '')
    assert done.stderr.splitlines() == [f'relay: bad configuration: {message}']


def test_the_worker_is_the_relays_gevent_worker(relay):
    assert issubclass(serving.RelayWorker, GeventWorker)
    assert watchdog(relay).json() == {'data': 'up'}
    messages = [line['message'] for line in relay.log_lines()]
    assert 'Using worker: spycloud_relay.serving.RelayWorker' in messages
    assert not [m for m in messages if 'Control' in m]  # no control socket, and no error about one
    assert 'MonkeyPatchWarning' not in relay.log_text()  # gevent patched before the app loaded


# -- A: slow clients do not take the capacity ---------------------------------------------------


def test_slow_clients_do_not_silence_the_worker(relay):
    """50 sockets that sent half a request head: the watchdog and a lookup answer promptly.

    With the threaded worker (8 threads) eight such sockets silenced a worker, /watchdog
    included, for as long as they stayed open. Each one here is still open and unanswered
    when the other requests are made; the relay drops them once ``keepalive`` (5 s) passes.
    """
    slow = []
    try:
        for _ in range(SLOW_SOCKETS):
            sock = socket.create_connection(('127.0.0.1', port_of(relay)), timeout=5)
            sock.sendall(PARTIAL_HEAD)
            slow.append(sock)
        wait_until(lambda: not_yet_accepted(port_of(relay)) == 0)  # the worker has them all
        assert watchdog(relay).json() == {'data': 'up'}
        answer = relay.observe([email('r5c2@slow-clients.example')])
        assert len(docs(answer, 'sightings')) == 5
        # Both were answered while every slow socket was still held open, unanswered: they did
        # not wait for the worker to drop them (no time is measured).
        for sock in slow:
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):  # open, nothing answered yet
                sock.recv(1)
        for sock in slow:  # a head that is not complete within keepalive is dropped, unanswered
            sock.settimeout(30)
            assert sock.recv(1) == b''
    finally:
        for sock in slow:
            sock.close()


# -- what gevent's patching must not break --------------------------------------------------------


def test_lookups_run_concurrently_under_gevent(relay):
    """The lookup pools are greenlets now: several requests of several observables at once."""
    answers, errors = {}, []

    def lookup(n):
        try:
            answers[n] = relay.observe([email(f'r{k}c2-{n}@gevent.example') for k in (1, 2, 3)])
        except Exception as error:  # reported below, with the others
            errors.append(error)

    callers = [threading.Thread(target=lookup, args=(n,)) for n in range(4)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(30)
    assert not errors
    for answer in answers.values():
        assert not answer.get('errors')
        assert len(docs(answer, 'sightings')) == 1 + 2 + 3
    assert len(answers) == 4


def test_a_hanging_spycloud_answer_ends_at_the_deadline(relay, spycloud):
    deadline = relay.env['LOOKUP_DEADLINE_S']
    spycloud.add_fault(mode='hang', match='hang-deadline', delay=60)
    answer, took = timed(
        relay.observe,
        [email('r2c1-hang-deadline@gevent.example'), email('r2c1@gevent-deadline.example')],
    )
    assert deadline - 0.5 <= took < deadline + 5  # not the fault's 60 s
    warnings = [e for e in answer['errors'] if e['code'] == 'deadline exceeded']
    assert warnings and all(e['type'] == 'warning' for e in warnings)
    assert 'r2c1-hang-deadline@gevent.example' in warnings[0]['message']
    assert len(docs(answer, 'sightings')) == 2  # the other observable's records


def test_a_key_server_that_drips_its_headers_is_cut_off(relay):
    """The JWKS watchdog (a greenlet now) shuts the fetch down at JWKS_TIMEOUT_S, and the
    worker answers others meanwhile."""
    canary = relay.canary
    connections = canary.connections
    token = relay.token(jwks_host=canary.host)
    result = {}

    def refused():
        result['response'], result['took'] = timed(relay.post, '/health', token=token)

    caller = threading.Thread(target=refused)
    caller.start()
    wait_until(lambda: canary.connections == connections + 1)  # the key fetch drips
    assert watchdog(relay).ok
    assert caller.is_alive()  # answered while the key fetch still drips
    caller.join(30)
    error = relay_refusal(result['response'])
    assert error['code'] == 'authorization error'
    assert error['message'] == f'Authorization failed: {auth.WRONG_JWKS_HOST}'
    assert result['took'] < relay.env['JWKS_TIMEOUT_S'] + 3
    assert canary.connections == connections + 1


# -- B: header limits agree with the relay's ------------------------------------------------------


def test_a_bogus_12_kb_token_is_judged_by_the_relay(relay):
    token = relay.token(padding='p' * 8700)
    header, payload, signature = token.split('.')
    middle = len(signature) // 2
    flipped = 'A' if signature[middle] != 'A' else 'B'
    bogus = f'{header}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}'
    assert 12000 <= len(bogus) <= 12300  # past gunicorn's default line limit of 8190
    error = relay_refusal(relay.post('/health', token=bogus))
    assert error['code'] == 'authorization error'
    assert error['message'].startswith('Authorization failed: Failed to decode JWT')


def test_a_token_one_byte_over_the_relays_limit_is_refused_by_the_relay(relay):
    error = relay_refusal(relay.post('/health', token='x' * (auth.MAX_TOKEN_BYTES + 1)))
    assert error == {
        'type': 'fatal',
        'code': 'authorization error',
        'message': f'Authorization failed: {auth.WRONG_JWT_STRUCTURE}',
    }


@pytest.mark.parametrize(
    'line', [b'X-Big: ' + b'b' * 30000, b'Authorization: Bearer ' + b'SECRET' * 5000]
)
def test_a_header_past_gunicorns_limit_gets_the_envelope(relay, line):
    status, headers, body = exchange(relay, head(extra=line + b'\r\n'))
    assert status == 431
    assert headers.items() >= ENVELOPE_HEADERS.items()
    error = single_error(body)
    assert error['code'] == 'invalid argument'
    assert error['message'] == (
        'A request header is too large: the limit is 20480 bytes per header line.'
    )
    assert b'bbbb' not in body and b'SECRET' not in body
    assert 'SECRET' not in relay.log_text()


LINE = 'The request line is not valid HTTP.'
HEADER = 'A request header is not valid HTTP.'


@pytest.mark.parametrize(
    'sent,status,message',
    [
        (b'GARBAGE\r\n\r\n', 400, LINE),
        (b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n', 400, LINE),  # TLS, plain port
        (b'get /watchdog HTTP/1.1\r\nHost: relay\r\n\r\n', 400, LINE),
        (
            b'GET /watchdog?SECRET-TOKEN HTTP/7.1\r\nHost: relay\r\n\r\n',
            400,
            'The HTTP version is not supported.',
        ),
        (
            b'GET /' + b'SECRET' * 1000 + b' HTTP/1.1\r\nHost: relay\r\n\r\n',
            414,
            'The request line is too long: the limit is 4094 bytes.',
        ),
        (head(extra=b'SECRET@name: x\r\n'), 400, HEADER),
        (head(extra=b'X-Secret: SECRET\x00\r\n'), 400, HEADER),
        (head(extra=b'X-Folded: a\r\n SECRET\r\n'), 400, HEADER),
        (head(extra=b'Transfer-Encoding: chunked\r\n'), 400, HEADER),  # and Content-Length
        (
            head(extra=b'Transfer-Encoding: SECRET\r\n'),
            501,
            "The request's Transfer-Encoding is not supported.",
        ),
        # 2 MiB of header: gunicorn stops reading at about 1 MiB and answers while the client
        # is still sending; the answer must survive the close (no reset before it is read).
        (
            head(extra=b'X-Huge: ' + b'h' * 2**21 + b'\r\n'),
            431,
            'The request headers are too large.',
        ),
        (
            head(extra=b''.join(b'X-Header-%d: %d\r\n' % (n, n) for n in range(60))),
            431,
            'Too many request headers: the limit is 50.',
        ),
    ],
    ids=[
        'garbage',
        'tls',
        'lower-case-method',
        'version',
        'long-line',
        'header-name',
        'header-value',
        'folding',
        'framing',
        'transfer-coding',
        'past-the-buffer',
        'too-many-headers',
    ],
)
def test_a_request_gunicorn_refuses_gets_the_envelope(relay, sent, status, message):
    answered, headers, body = exchange(relay, sent)
    assert answered == status
    assert headers.items() >= ENVELOPE_HEADERS.items()
    assert single_error(body) == {'type': 'fatal', 'code': 'invalid argument', 'message': message}
    assert b'SECRET' not in body and b'GARBAGE' not in body
    assert 'SECRET' not in relay.log_text()


def test_a_refused_request_gunicorn_had_read_is_in_the_access_log(relay):
    exchange(relay, head(path='/access-log-check', extra=b'Transfer-Encoding: chunked\r\n'))
    (line,) = [
        line
        for line in relay.log_lines()
        if line['logger'] == 'gunicorn.access' and line['path'] == '/access-log-check'
    ]
    assert line['status'] == 400 and line['method'] == 'POST'


@pytest.mark.parametrize(
    'error',
    [RuntimeError('SECRET'), InvalidResponseHeader('SECRET'), InvalidResponseHeaderName('SECRET')],
)
def test_what_is_not_the_clients_fault_is_an_internal_error(error):
    status, reason, code, message = serving.refusal(error, cfg=None)
    assert (status, code) == (500, 'internal error')
    assert 'SECRET' not in message
    answer = serving.error_answer(status, reason, code, message)
    assert answer.startswith(b'HTTP/1.1 500 Internal Server Error\r\n')
    assert single_error(answer.partition(b'\r\n\r\n')[2])['code'] == 'internal error'


def test_a_refusal_is_logged_without_the_requests_bytes(relay):
    before = len(relay.log_lines())
    exchange(relay, head(extra=b'X-Big: ' + b'SECRET' * 5000 + b'\r\n'))
    (line,) = [line for line in relay.log_lines()[before:] if line['logger'] == 'gunicorn.error']
    assert line['level'] == 'WARNING'
    assert line['message'] == (
        'refused a request from 127.0.0.1 with 431: A request header is '
        'too large: the limit is 20480 bytes per header line. '
        '(LimitRequestHeaders)'
    )


# -- C: a body that cannot be read ----------------------------------------------------------------


def chunked_observe(relay, chunks):
    return (
        b'POST /observe/observables HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n'
        b'Authorization: Bearer %s\r\nContent-Type: application/json\r\n'
        b'Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n%s'
        % (port_of(relay), relay.token().encode(), chunks)
    )


MALFORMED_BODY = (
    'The request body could not be read: malformed chunked encoding or a body cut short.'
)
MALFORMED_CHUNKS = [b'zz\r\n[]\r\n0\r\n\r\n', b'2\r\n[]XX0\r\n\r\n']


@pytest.mark.parametrize('chunks', MALFORMED_CHUNKS)
def test_a_malformed_chunked_body_is_an_invalid_argument(relay, chunks):
    before = len(relay.log_lines())
    status, headers, body = exchange(relay, chunked_observe(relay, chunks))
    assert status == 200
    assert single_error(body) == {
        'type': 'fatal',
        'code': 'invalid argument',
        'message': MALFORMED_BODY,
    }
    lines = relay.log_lines()[before:]
    assert not [line for line in lines if 'exception' in line or line['level'] == 'ERROR']
    assert 'Traceback' not in relay.log_text()


@pytest.mark.parametrize('chunks', MALFORMED_CHUNKS)
def test_a_malformed_chunked_body_is_an_invalid_argument_under_werkzeug(make_relay, chunks):
    werkzeug = make_relay()
    status, headers, body = exchange(werkzeug, chunked_observe(werkzeug, chunks))
    assert status == 200
    assert single_error(body) == {
        'type': 'fatal',
        'code': 'invalid argument',
        'message': MALFORMED_BODY,
    }


def test_a_well_formed_chunked_body_is_read(relay):
    observables = json.dumps([email('r2c1@chunked.example')]).encode()
    chunks = b'%x\r\n%s\r\n0\r\n\r\n' % (len(observables), observables)
    status, headers, body = exchange(relay, chunked_observe(relay, chunks))
    assert status == 200
    assert len(docs(assert_valid_answer(json.loads(body)), 'sightings')) == 2


# -- E: one request must not stall the others (review item 4) ------------------------------------


def test_one_request_does_not_stall_the_others(relay, spycloud):
    """Review item 4. A's 16 lookups hang at SpyCloud until the deadline; B's single lookup,
    made meanwhile on the same worker, must not queue behind them.

    Fails while every request of a worker shares one lookup pool of SPYCLOUD_MAX_WORKERS (16)
    threads: B then waits for A's deadline (3 s here).
    """
    spycloud.add_fault(mode='hang', match=r'stall-a-\d+@', delay=60)
    stalled = {}

    def request_a():
        stalled['answer'] = relay.observe([email(f'stall-a-{n}@stall.example') for n in range(16)])

    a = threading.Thread(target=request_a)
    a.start()
    try:
        wait_until(lambda: spycloud.stats()['in_flight'] >= 16, interval=0.02)
        assert spycloud.stats()['in_flight'] >= 16  # all of A's lookups hang at SpyCloud
        answer = relay.observe([email('r3c1-stall-b@stall.example')])
        assert len(docs(answer, 'sightings')) == 3 and not answer.get('errors')
        # B was answered while all of A's lookups still hung (until A's 3 s deadline).
        assert spycloud.stats()['in_flight'] >= 16 and a.is_alive()
    finally:
        a.join(30)
    assert {e['code'] for e in stalled['answer']['errors']} == {'deadline exceeded'}


def test_connections_spread_over_the_workers(spycloud_server, jwks, tmp_path):
    """Each worker listens on its own socket (reuse_port), so the kernel spreads new
    connections over them: 64 keep-alive clients' answers come from both workers."""
    log_path = tmp_path / 'relay.log'
    with (
        open(log_path, 'w') as output,
        localrelay.gunicorn_relay(
            spycloud_server, jwks, output=output, WEB_CONCURRENCY=2, LOG_LEVEL='info'
        ) as url,
    ):
        relay = RelayAt(url, jwks, log_path)
        for n in range(64):
            with requests.Session() as session:
                for _ in range(2):
                    session.post(
                        url + '/observe/observables',
                        json=[{'type': 'email', 'value': f'r1c1-{n}@spread.example'}],
                        headers={'Authorization': f'Bearer {relay.token()}'},
                        timeout=30,
                    )
    answered = Counter(
        line['pid'] for line in relay.log_lines() if line.get('path') == '/observe/observables'
    )
    assert sum(answered.values()) == 128 and len(answered) == 2
    assert min(answered.values()) >= 128 * 0.2


def test_log_level_warning_quiets_the_access_log_too(spycloud_server, jwks, tmp_path):
    """LOG_LEVEL=warning leaves the warnings: no access line, no request line per answer."""
    log_path = tmp_path / 'relay.log'
    with open(log_path, 'w') as output:
        env = dict(WEB_CONCURRENCY=1, LOG_LEVEL='warning', ALLOWED_JWKS_HOSTS=jwks.jwks_host)
        with localrelay.gunicorn_relay(spycloud_server, jwks, output=output, **env) as url:
            quiet = RelayAt(url, jwks, log_path)
            assert_valid_answer(quiet.observe([email('alice@example.org')]))
            exchange(quiet, head(path='/quiet-check', extra=b'Transfer-Encoding: chunked\r\n'))
    lines = quiet.log_lines()  # gunicorn has stopped: all it logged is there
    assert any(line['level'] == 'WARNING' and ' 400:' in line['message'] for line in lines)
    assert {line['level'] for line in lines} <= {'WARNING', 'ERROR', 'CRITICAL'}
    assert not [line for line in lines if line['logger'] == 'gunicorn.access']
