"""read_bounded over real HTTP: a loopback socket server sends the body, urllib3 reads it.

Assertions are on bytes (what was decoded, what was pulled off the wire), never on time.
"""

import gzip
import socket
import threading

import pytest
import urllib3

from spycloud_relay.bounded_read import BodyTooLarge, DeadlinePassed, read_bounded
from support import stopped_afterwards

CHUNK = 16 * 1024


def never():
    return False


class OneShotServer:
    """Answers one request on 127.0.0.1 with ``head`` and then each piece of ``body``; with
    ``hold``, keeps the connection open afterwards until the test ends."""

    def __init__(self, head, body, gap=0.0, hold=False):
        self._head, self._body, self._gap, self._hold = head, body, gap, hold
        self._listener = socket.create_server(('127.0.0.1', 0))
        self._stop = threading.Event()
        self.url = f'http://127.0.0.1:{self._listener.getsockname()[1]}/body'
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        connection, _ = self._listener.accept()
        with connection:
            request = b''
            while b'\r\n\r\n' not in request:
                request += connection.recv(4096)
            try:
                connection.sendall(self._head)
                for piece in self._body:
                    connection.sendall(piece)
                    if self._gap and self._stop.wait(self._gap):
                        return
                if self._hold:
                    self._stop.wait(30)
            except OSError:
                pass  # the client hung up: what a refusal looks like from here

    def stop(self):
        self._stop.set()
        self._listener.close()
        self._thread.join(5)


def head(**headers):
    lines = [b'HTTP/1.1 200 OK'] + [
        f'{k.replace("_", "-")}: {v}'.encode() for k, v in headers.items()
    ]
    return b'\r\n'.join(lines) + b'\r\n\r\n'


@pytest.fixture
def serve():
    with stopped_afterwards(OneShotServer) as start:
        yield start


@pytest.fixture
def get():
    pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=30))
    responses = []

    def fetch(url):
        response = pool.request('GET', url, preload_content=False)
        responses.append(response)
        return response

    yield fetch
    for response in responses:
        response.close()
    pool.clear()


def test_a_body_up_to_the_cap_is_read_whole(serve, get):
    body = bytes(range(256)) * 400  # 102 400 bytes
    server = serve(head(Content_Length=len(body)), [body])
    response = get(server.url)
    assert read_bounded(response, max_bytes=len(body), expired=never, chunk_bytes=CHUNK) == body


def test_an_empty_body_is_empty(serve, get):
    server = serve(head(Content_Length=0), [])
    assert read_bounded(get(server.url), max_bytes=10, expired=never) == b''


def test_plain_bytes_over_the_cap_are_refused_early(serve, get):
    size, cap = 8 * 1024 * 1024, 64 * 1024
    server = serve(head(Content_Length=size), [b'x' * (1024 * 1024)] * 8)
    response = get(server.url)
    with pytest.raises(BodyTooLarge) as refused:
        read_bounded(response, max_bytes=cap, expired=never, chunk_bytes=CHUNK)
    assert cap < refused.value.received <= cap + CHUNK
    assert response.tell() <= cap + CHUNK  # pulled off the wire: the cap and one chunk


def test_a_gzip_bomb_is_refused_on_decoded_bytes_without_being_inflated(serve, get):
    """256 MiB of zeros in 263 KB of gzip: under the cap on the wire, far over it decoded."""
    member = gzip.compress(b'\0' * (1024 * 1024), compresslevel=9)
    wire, inflated, cap = member * 256, 256 * 1024 * 1024, 1024 * 1024
    assert len(wire) < cap  # a cap on wire bytes alone would let it through
    server = serve(head(Content_Length=len(wire), Content_Encoding='gzip'), [wire])
    response = get(server.url)
    with pytest.raises(BodyTooLarge) as refused:
        read_bounded(response, max_bytes=cap, expired=never, chunk_bytes=CHUNK)
    assert cap < refused.value.received <= cap + CHUNK  # decoded: a chunk past the cap at most
    assert refused.value.received < inflated // 100
    assert response.tell() < len(wire) // 4  # most of the bomb was never even read


def test_a_gzip_body_under_the_cap_is_decoded(serve, get):
    body = b'{"keys": []}' * 1000
    wire = gzip.compress(body)
    server = serve(head(Content_Length=len(wire), Content_Encoding='gzip'), [wire])
    assert read_bounded(get(server.url), max_bytes=len(body), expired=never) == body


def test_a_trickle_ends_when_expired_says_so(serve, get):
    """A byte at a time, then silence with the connection open: every read returns what has
    arrived, so ``expired`` is asked after each byte, and the fifth answer ends the read.
    (A read waiting for a full chunk would get all 200 bytes and then sit on the socket.)"""
    server = serve(head(Connection='close'), [b'x'] * 200, gap=0.01, hold=True)
    response = get(server.url)
    asked = []

    def expired():
        asked.append(len(asked))
        return len(asked) >= 5

    with pytest.raises(DeadlinePassed) as passed:
        read_bounded(response, max_bytes=1024, expired=expired, chunk_bytes=CHUNK)
    assert len(asked) == 5
    assert 5 <= passed.value.received < 200


def test_the_size_is_checked_before_the_deadline(serve, get):
    body = b'y' * (4 * CHUNK)
    server = serve(head(Content_Length=len(body)), [body])
    with pytest.raises(BodyTooLarge):
        read_bounded(get(server.url), max_bytes=0, expired=lambda: True, chunk_bytes=CHUNK)


def test_errors_of_the_read_itself_pass_through(serve, get):
    """A body cut short of its Content-Length is urllib3's to name, not the helper's."""
    server = serve(head(Content_Length=1000), [b'z' * 10])
    with pytest.raises(urllib3.exceptions.HTTPError):
        read_bounded(get(server.url), max_bytes=10_000, expired=never)


def test_each_read_waits_no_longer_than_wait_at_most(serve):
    """Ten bytes of a thousand, then silence with the connection open: the socket's own read
    timeout (60 s) is longer than the server holds on (30 s, after which it hangs up and the
    body ends short), so only a wait capped by ``wait_at_most`` ends in a read timeout."""
    server = serve(head(Content_Length=1000), [b'z' * 10], hold=True)
    pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=60))
    response = pool.request('GET', server.url, preload_content=False)
    asked = []

    def wait_at_most():
        asked.append(len(asked))
        return 0.2

    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        read_bounded(response, max_bytes=10_000, expired=never, wait_at_most=wait_at_most)
    assert asked  # asked before the reads, the last of which timed out
    pool.clear()


def open_connections(pool, url):
    """The connections the pool of ``url`` holds with their socket still open (its queue holds
    None for a slot never used, and a closed connection is a shell that reconnects)."""
    queue = list(pool.connection_from_url(url).pool.queue)
    return [c for c in queue if c is not None and c.sock is not None]


def test_a_body_read_whole_returns_its_connection_to_the_pool(serve):
    body = b'w' * 1000
    server = serve(head(Content_Length=len(body)), [body], hold=True)
    pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=30))
    response = pool.request('GET', server.url, preload_content=False)
    assert read_bounded(response, max_bytes=len(body), expired=never) == body
    assert len(open_connections(pool, server.url)) == 1
    pool.clear()


def test_a_body_cut_short_has_its_connection_closed_not_pooled_open(serve):
    server = serve(head(Content_Length=8 * CHUNK), [b'v' * (8 * CHUNK)], hold=True)
    pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=30))
    response = pool.request('GET', server.url, preload_content=False)
    with pytest.raises(BodyTooLarge) as refused:
        read_bounded(response, max_bytes=CHUNK, expired=never, chunk_bytes=CHUNK)
    assert refused.value.max_bytes == CHUNK
    assert response.closed
    assert open_connections(pool, server.url) == []
    pool.clear()
