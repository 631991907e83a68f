"""Helpers the tests share: the contract validator, a relay served over real HTTP, a clock a
test moves by hand and a wait for what another thread or process does. Test modules import
them from here, never from conftest (which holds only fixtures)."""

import datetime
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import requests
from werkzeug.serving import make_server

from simulator import tenant
from spycloud_relay.api.auth import TokenVerifier
from spycloud_relay.api.jwks import KeySet
from spycloud_relay.api.services import services
from spycloud_relay.app import create_app
from spycloud_relay.config import Settings
from spycloud_relay.spycloud.client import SpyCloudClient
from spycloud_relay.state import MemoryStore
from spycloud_relay.tiles.aggregate import PERIODS

CONTRACT = Path(__file__).resolve().parent / 'contracts' / 'iroh-enrich-definitions.json'
AUTHORIZATION_FAILED = 'Authorization failed: '
_DEFINITIONS = json.loads(CONTRACT.read_text())['definitions']


T = TypeVar('T')


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.01) -> T:
    """``predicate()``'s first true value, polled every ``interval`` s; fails the test when it
    is not true within ``timeout`` s. For what another thread or process does: a guessed
    sleep is too short on a slow machine and wasted on a fast one."""
    ends = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > ends:
            raise AssertionError(f'not true within {timeout:g} s: {predicate}')
        time.sleep(interval)
    return value


class Clock:
    """A clock that moves only when the test says so (``clock.now += seconds``): TTLs and
    budgets checked exactly, with no sleep."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def settled_today(margin_s: float = 30.0) -> datetime.date:
    """Today's UTC date, for a test whose expectation names days before today: when midnight
    UTC is less than ``margin_s`` away it waits it out first, so that the test's "today" and
    the one the simulator and the relay compute a moment later are the same day."""
    now = datetime.datetime.now(datetime.UTC)
    midnight = datetime.datetime.combine(
        now.date() + datetime.timedelta(days=1), datetime.time(), datetime.UTC
    )
    left = (midnight - now).total_seconds()
    if left < margin_s:
        time.sleep(left + 0.1)
    return datetime.datetime.now(datetime.UTC).date()


def relay_settings(spycloud: Any, jwks: Any, **overrides: Any) -> Settings:
    """The settings of a test's relay: the simulator and issuer of this session, short waits,
    and ``overrides``."""
    values = dict(
        spycloud_api_url=spycloud.url,
        allowed_jwks_hosts=(jwks.jwks_host,),
        spycloud_backoff_s=0.01,
        connect_timeout_s=2.0,
        read_timeout_s=5.0,
        # Most tests count SpyCloud calls of repeated lookups; the cache's own tests turn it on.
        records_cache_ttl_s=0.0,
        # Most tests assert today's sighting per record and its calls; the Compass pivot's own
        # tests (test_compass.py) turn it on, as it is by default.
        compass_pivot=False,
    )
    values.update(overrides)
    return Settings(**values)


def _validator(name):
    schema = {'definitions': _DEFINITIONS, '$ref': f'#/definitions/{name}'}
    checker = jsonschema.Draft4Validator.FORMAT_CHECKER
    return jsonschema.Draft4Validator(schema, format_checker=checker)


BUNDLE = _validator('ModuleObserveBundle')
ERROR = _validator('ModuleErrorMessage')
HEALTH = _validator('ModuleHealthStatus')
REF = _validator('Ref')
REF_FIELDS = {'id', 'title', 'description', 'url', 'categories'}
# What IROH adds to each of a module's refs before it checks them against its Ref.
IROH_REF_FIELDS = {'module': 'SpyCloud', 'module_type_id': 'type', 'module_instance_id': 'id'}
# CTIM entities as IROH's contract defines them: what the sync imports into XDR.
ENTITIES = {
    name: _validator(name) for name in ('Incident', 'Sighting', 'Indicator', 'Relationship')
}


def assert_valid_answer(body):
    """An observe answer: data per ModuleObserveBundle, errors per ModuleErrorMessage."""
    assert set(body) <= {'data', 'errors'}, body.keys()
    if 'data' in body:
        BUNDLE.validate(body['data'])
    for error in body.get('errors', []):
        ERROR.validate(error)
    return body


def assert_valid_refs(body):
    """A refer answer: data a list of refs with exactly the relay's fields, each valid per
    IROH's Ref once IROH adds its own, with unique ids; errors per ModuleErrorMessage."""
    assert set(body) <= {'data', 'errors'}, body.keys()
    refs = body.get('data', [])
    assert isinstance(refs, list), body
    for ref in refs:
        assert set(ref) == REF_FIELDS, ref
        assert ref['categories'] and all(isinstance(c, str) for c in ref['categories']), ref
        REF.validate({**ref, **IROH_REF_FIELDS})
    assert len({ref['id'] for ref in refs}) == len(refs), refs
    for error in body.get('errors', []):
        ERROR.validate(error)
    return body


def docs(body, plural):
    return body.get('data', {}).get(plural, {}).get('docs', [])


def verdict_values(body):
    return {d['observable']['value'] for d in docs(body, 'verdicts')}


def send_raw(port, request, seconds=10, enough=None):
    """What a server on 127.0.0.1:``port`` answers to the raw ``request`` bytes, sent from a
    thread of their own (a server may answer before it has read them all). Read until the
    server closes, or until ``enough(answer)``; a reset after the answer is not an error."""
    import socket

    answer = b''
    with socket.create_connection(('127.0.0.1', port), timeout=seconds) as sock:
        sender = threading.Thread(target=_send_quietly, args=(sock, request), daemon=True)
        sender.start()
        try:
            while not (enough and enough(answer)):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except ConnectionResetError:
            pass
        sender.join(seconds)
    return answer


def _send_quietly(sock, data):
    try:
        sock.sendall(data)
    except OSError:
        pass  # the server answered and hung up before reading it all: expected for some


@contextmanager
def stopped_afterwards(start):
    """A starter for a test's servers: ``start(...)`` as it is, each server it returns
    stopped (``.stop()``) when the block ends."""
    started = []

    def starting(*args, **kwargs):
        server = start(*args, **kwargs)
        started.append(server)
        return server

    try:
        yield starting
    finally:
        for server in started:
            server.stop()


def single_error(answer, code=None, *, kind='fatal', prefix=None):
    """The one error of an answer that holds nothing else (no data, no other error).

    ``answer`` is a parsed body, its JSON (text or bytes), or a response (requests' or Flask's
    test client's), whose status must then be 200: the envelope, not an HTTP error. The error
    must be of type ``kind`` (``None``: any) and, when given, of ``code``. With ``prefix``, its
    message must start with it, and what follows is returned; else the error itself.
    """
    if hasattr(answer, 'status_code'):
        assert answer.status_code == 200, answer.text[:500]
        answer = answer.text
    body = json.loads(answer) if isinstance(answer, (str, bytes)) else answer
    assert set(body) == {'errors'}, body
    (error,) = body['errors']
    ERROR.validate(error)
    if kind is not None:
        assert error['type'] == kind, error
    if code is not None:
        assert error['code'] == code, error
    if prefix is None:
        return error
    assert error['message'].startswith(prefix), error
    return error['message'][len(prefix) :]


def refused(response):
    """The reason of the one fatal ``authorization error`` a relay answered with."""
    return single_error(response, 'authorization error', prefix=AUTHORIZATION_FAILED)


def start_relay(settings, issuer, clock=None):
    """``create_app(settings)`` served on loopback, with the SpyCloudClient it was handed kept
    as ``relay.spycloud`` (and its settings as ``relay.settings``) for the test to look at.

    ``clock``: what the records, catalog and key-set caches count their TTL on, for a test that
    moves it instead of waiting the TTL out."""
    if clock is None:
        client, verifier = SpyCloudClient(settings), None
    else:
        client = SpyCloudClient(
            settings,
            catalogs=MemoryStore(
                settings.catalog_cache_size, settings.catalog_cache_ttl_s, timer=clock
            ),
            records=MemoryStore(
                settings.records_cache_size, settings.records_cache_ttl_s, timer=clock
            ),
        )
        verifier = TokenVerifier(settings, KeySet(settings, clock=clock))
    app = create_app(settings, spycloud=client, verifier=verifier)
    return RelayServer(app, issuer, spycloud=client, settings=settings)


class RelayServer:
    """The Flask app on a loopback port, served by werkzeug's threaded server.

    ``spycloud`` is the SpyCloudClient the app was created with (closed by ``stop``);
    ``start_relay`` passes it, with ``settings``. An app made elsewhere gets its own client
    closed through the app's services.
    """

    def __init__(self, app, issuer, *, spycloud=None, settings=None):
        self.app = app
        self.issuer = issuer
        self.spycloud = spycloud
        self.settings = settings
        self._server = make_server('127.0.0.1', 0, app, threaded=True)
        self.url = f'http://127.0.0.1:{self._server.server_port}'
        # A short poll: stop() waits for the serving loop to see the request to shut down.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), daemon=True
        )
        self._thread.start()

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        if self.spycloud is not None:
            self.spycloud.close()
        else:
            with self.app.app_context():
                services().spycloud.close()

    def token(self, **claims):
        claims.setdefault('aud', self.url)
        return self.issuer.mint(**claims)

    def post(self, path, body=None, *, token=None, headers=None, data=None, **claims):
        """POST with a fresh valid token unless ``token`` (or an Authorization header) is given."""
        headers = dict(headers or {})
        if 'Authorization' not in headers:
            headers['Authorization'] = f'Bearer {token or self.token(**claims)}'
        if data is None and body is not None:
            data = json.dumps(body)
        return requests.post(self.url + path, data=data, headers=headers, timeout=30)

    def observe(self, observables, **kwargs):
        response = self.post('/observe/observables', observables, **kwargs)
        assert response.status_code == 200, response.text
        return assert_valid_answer(response.json())

    def deliberate(self, observables, **kwargs):
        response = self.post('/deliberate/observables', observables, **kwargs)
        assert response.status_code == 200, response.text
        return assert_valid_answer(response.json())

    def refer(self, observables, **kwargs):
        response = self.post('/refer/observables', observables, **kwargs)
        assert response.status_code == 200, response.text
        return assert_valid_refs(response.json())

    def health(self, **kwargs):
        response = self.post('/health', **kwargs)
        assert response.status_code == 200, response.text
        return response.json()


def period_windows(period, size=30):
    """The windows (first day, last day) a cold gathering of ``period`` asks first: the
    calendar days it touches as the fewest windows of at most ``size`` days, of lengths
    differing by one at most, oldest first. Worked out here, apart from the relay."""
    now = datetime.datetime.now(datetime.UTC)
    first, today = (now - PERIODS[period]).date(), now.date()
    days = (today - first).days + 1
    count = math.ceil(days / size)
    lengths = [days // count + (1 if n < days % count else 0) for n in range(count)]
    found = []
    for length in lengths:
        found.append((first, first + datetime.timedelta(days=length - 1)))
        first += datetime.timedelta(days=length)
    return found


def windowed_calls(period, size=30, page_size=1000):
    """The watchlist calls a gathering of ``period`` in windows of at most ``size`` days
    makes when none is split: the pages of each window's records (since its first day, until
    the day after its last, both included as the simulator reads them). Worked out from the
    simulator's data, so it holds whatever the date."""
    today = datetime.datetime.now(datetime.UTC).date()
    calls = 0
    for first, last in period_windows(period, size):
        since = datetime.datetime.combine(first, datetime.time())
        until = datetime.datetime.combine(last + datetime.timedelta(days=1), datetime.time())
        calls += max(1, math.ceil(len(tenant.select(today, since, until)) / page_size))
    return calls


def email(value):
    return {'type': 'email', 'value': value}


class Canary:
    """A loopback HTTPS server that counts every connection and byte, trusted like the issuer.

    It presents the JWKS issuer's certificate (127.0.0.1 and localhost, signed by the CA the
    relay trusts), so a relay that was tricked into fetching keys from it would succeed: a
    connection count of 0 is the proof that nothing was sent. ``mode`` picks the behaviour:
    ``jwks`` (a 200 with ``document``: by default the issuer's real keys, padded to ``size``
    bytes when given; bytes are sent as they are), ``huge`` (a valid JWKS padded to ``size``
    bytes, sent as fast as the client reads), ``drip-headers`` / ``drip-body`` (one byte every
    ``interval`` seconds, so no single read ever times out), ``gzip-bomb`` (a small gzip body
    that inflates to ``size`` bytes of valid JSON), ``redirect`` (a 302 to ``location``) and
    ``silent`` (no answer).
    """

    def __init__(
        self, issuer, mode='jwks', *, size=None, interval=0.2, location=None, document=None
    ):
        import socket
        import ssl

        self.issuer, self.mode, self.size = issuer, mode, size
        self.interval, self.location, self.document = interval, location, document
        self.connections = 0
        self.bytes_received = 0
        self.bytes_sent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._open = set()
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(*issuer.server_cert_paths)
        self._listener = socket.create_server(('127.0.0.1', 0))
        self._listener.settimeout(0.01)  # how soon stop() is seen
        self.port = self._listener.getsockname()[1]
        self.host = f'127.0.0.1:{self.port}'
        if mode == 'gzip-bomb':  # made here, not while the relay waits for it
            import gzip

            self._bomb = gzip.compress(self._jwks_bytes(size), 9)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        import socket

        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            conns = list(self._open)
        for conn in conns:
            try:
                socket.socket.shutdown(conn, socket.SHUT_RDWR)
            except (OSError, ValueError):
                pass

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            with self._lock:
                self.connections += 1
                self._open.add(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, raw):
        conn = raw
        try:
            raw.settimeout(10)
            conn = self._context.wrap_socket(raw, server_side=True)  # detaches ``raw``
            with self._lock:
                self._open.discard(raw)
                self._open.add(conn)
            head = b''
            while b'\r\n\r\n' not in head and len(head) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
                with self._lock:
                    self.bytes_received += len(chunk)
            self._answer(conn)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(raw)
                self._open.discard(conn)
            conn.close()

    def _send(self, conn, data):
        conn.sendall(data)
        with self._lock:
            self.bytes_sent += len(data)

    def _jwks_bytes(self, size=None):
        if isinstance(self.document, bytes):
            return self.document
        body = json.dumps(self.document if self.document is not None else self.issuer.jwks())
        if size:
            head = body[:-1] + ', "padding": "'
            body = head + 'A' * (size - len(head) - 2) + '"}'
        return body.encode()

    def _answer(self, conn):
        mode = self.mode
        if mode == 'silent':
            self._stop.wait(30)
        elif mode == 'jwks':
            body = self._jwks_bytes(self.size)
            self._send(
                conn,
                b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
                b'Content-Length: %d\r\nConnection: close\r\n\r\n' % len(body) + body,
            )
        elif mode == 'redirect':
            self._send(
                conn,
                b'HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n'
                b'Connection: close\r\n\r\n' % self.location.encode(),
            )
        elif mode == 'gzip-bomb':
            body = self._bomb
            self._send(
                conn,
                b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
                b'Content-Encoding: gzip\r\nContent-Length: %d\r\n'
                b'Connection: close\r\n\r\n' % len(body) + body,
            )
        elif mode == 'huge':
            body = self._jwks_bytes(self.size)
            self._send(
                conn,
                b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
                b'Content-Length: %d\r\nConnection: close\r\n\r\n' % len(body),
            )
            view = memoryview(body)
            for start in range(0, len(body), 65536):
                if self._stop.is_set():
                    return
                self._send(conn, view[start : start + 65536])
        elif mode in ('drip-headers', 'drip-body'):
            if mode == 'drip-headers':
                self._send(conn, b'HTTP/1.1 200 OK\r\n')
                drip = b'X-Drip: ' + b'a' * 60000
            else:
                self._send(
                    conn,
                    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
                    b'Content-Length: 1000000\r\n\r\n',
                )
                drip = b' ' * 1000000
            for byte in drip:
                if self._stop.wait(self.interval):
                    return
                self._send(conn, bytes([byte]))


class RelayAt(RelayServer):
    """A relay another process serves at ``url`` (gunicorn): RelayServer's client methods.

    ``log_path`` is the file that gets the process's JSON log lines; ``canary`` a key server
    the relay was told to allow, when one was started with it; ``env`` the relay's settings.
    """

    def __init__(self, url, issuer, log_path=None, canary=None, env=None):  # nothing to start
        self.url, self.issuer, self.log_path, self.canary = url, issuer, log_path, canary
        self.env = dict(env or {})

    def stop(self):
        """The process belongs to whoever started it."""

    def log_text(self):
        """All the process has logged so far."""
        return Path(self.log_path).read_text(errors='replace') if self.log_path else ''

    def log_lines(self):
        """Its JSON log lines so far, parsed."""
        return [json.loads(line) for line in self.log_text().splitlines() if line.startswith('{')]


class Proxy:
    """A loopback forward proxy, as HTTPS_PROXY / HTTP_PROXY name one: a CONNECT opens a tunnel
    (the HTTPS case: the proxy sees where, never what), anything else is an absolute-form request
    it forwards in origin form on a connection of its own, closed after the answer.
    ``heads`` holds every request head it received, as sent."""

    def __init__(self):
        import socketserver

        proxy = self
        self.heads = []
        self._lock = threading.Lock()

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                proxy._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self._server.server_address[1]}'
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def _serve(self, client):
        import socket
        from urllib.parse import urlsplit

        client.settimeout(10)
        head, rest = _message_head(client)
        if head is None:
            return
        with self._lock:
            self.heads.append(head.decode('latin-1'))
        method, target, version = head.split(b'\r\n', 1)[0].split(b' ')
        if method == b'CONNECT':
            host, _, port = target.decode().rpartition(':')
            upstream = socket.create_connection((host, int(port)), timeout=10)
            client.sendall(b'HTTP/1.1 200 Connection established\r\n\r\n')
            _pipe_both(client, upstream, rest)
            return
        url = urlsplit(target.decode())
        upstream = socket.create_connection((url.hostname, url.port or 80), timeout=10)
        origin = (url.path or '/') + (f'?{url.query}' if url.query else '')
        request = [f'{method.decode()} {origin} {version.decode()}'.encode()]
        request += [line for line in head.split(b'\r\n')[1:] if not _hop_by_hop(line)]
        upstream.sendall(b'\r\n'.join([*request, b'Connection: close', b'', b'']) + rest)
        # One request per connection, and the client is told so: it must not send another.
        answer_head, body = _message_head(upstream)
        if answer_head is None:
            return
        lines = [line for line in answer_head.split(b'\r\n') if not _hop_by_hop(line)]
        client.sendall(b'\r\n'.join([*lines, b'Connection: close', b'', b'']) + body)
        _pipe_both(client, upstream, b'')


def _message_head(sock):
    """(head, the bytes read past it) of the HTTP message arriving on ``sock``; (None, b'')
    when it closes first."""
    data = b''
    while b'\r\n\r\n' not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b''
        data += chunk
    head, _, rest = data.partition(b'\r\n\r\n')
    return head, rest


def _hop_by_hop(header_line):
    return header_line.lower().startswith((b'connection:', b'keep-alive:', b'proxy-'))


def _pipe_both(client, upstream, pending):
    """Bytes both ways until either side closes; ``pending`` goes upstream first."""

    def copy(source, sink):
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(2)
                except OSError:
                    pass

    if pending:
        upstream.sendall(pending)
    back = threading.Thread(target=copy, args=(upstream, client), daemon=True)
    back.start()
    copy(client, upstream)
    back.join(10)
    upstream.close()


def metric(text, name, **labels):
    """The value of one sample in Prometheus' text format (0 when absent)."""
    wanted = ','.join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + ('{' + wanted + '}' if labels else ' ')):
            return float(line.rsplit(' ', 1)[1])
    return 0.0


CODE_DIR = Path(__file__).resolve().parent.parent


def _read_line(stream, timeout):
    """The stream's next line, or None when none comes within ``timeout`` seconds."""
    lines = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return lines[0] if lines else None


@contextmanager
def simulator_process(*args):
    """``python -m simulator ARGS`` running: the process and the JSON line it prints first
    (its URLs and credentials); killed at the end if the test left it running."""
    proc = subprocess.Popen(
        [sys.executable, '-m', 'simulator', *args],
        cwd=CODE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _read_line(proc.stdout, 10)
        assert line, f'simulator printed nothing: {proc.poll()}'
        yield proc, json.loads(line)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        proc.stdout.close()
        proc.stderr.close()
