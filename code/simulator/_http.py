"""Threaded loopback HTTP(S) server plumbing shared by the SpyCloud and JWKS simulators.

Why this exists: the stock ``ThreadingHTTPServer`` resolves the host name on bind, does the TLS
handshake on the accept thread, keeps idle keep-alive connections open after ``shutdown()`` and
prints a traceback for every client that hangs up. Tests need the opposite of all four.
"""

import json
import select
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ['BackgroundServer', 'BaseHandler', 'reason', 'tls_server_context']


def reason(status):
    """Reason phrase for a status code, tolerant of codes outside the IANA table."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return 'Unknown'


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # server_close() must not wait for handlers sleeping on a fault
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, handler, owner, stop_event, ssl_context):
        self.owner = owner
        self.stop_event = stop_event
        self.ssl_context = ssl_context
        self._conns = set()
        self._conns_lock = threading.Lock()
        self.accepted = 0  # TCP connections accepted: keep-alive reuse keeps this low
        super().__init__(address, handler)

    def server_bind(self):
        # Skip HTTPServer.server_bind's getfqdn(): a reverse DNS lookup has no place in a unit test.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port

    def track(self, sock):
        with self._conns_lock:
            self._conns.add(sock)
            self.accepted += 1

    def untrack(self, sock):
        with self._conns_lock:
            self._conns.discard(sock)

    def abort_connections(self):
        """Wake every handler blocked on a socket read so its thread can end."""
        with self._conns_lock:
            conns = list(self._conns)
            self._conns.clear()
        for sock in conns:
            try:
                # Bypass SSLSocket.shutdown(), which would tear down the TLS object under a
                # thread that is still reading from it.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except (OSError, ValueError):
                pass

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) or self.stop_event.is_set():
            return  # clients hanging up (or shutdown) are normal here, not bugs
        super().handle_error(request, client_address)


class BaseHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 handler with quiet logging, optional TLS and JSON helpers."""

    protocol_version = 'HTTP/1.1'
    timeout = 30  # idle keep-alive connections are dropped after this long
    disable_nagle_algorithm = True  # headers and body go out in two writes; avoid 40 ms stalls
    server_version = 'simulator'

    def version_string(self):
        return self.server_version

    def setup(self):
        raw = self.request
        self.server.track(raw)
        self._tls = self.server.ssl_context is not None
        if self._tls:
            raw.settimeout(self.timeout)
            try:
                tls_sock = self.server.ssl_context.wrap_socket(
                    raw, server_side=True, do_handshake_on_connect=False
                )
            except Exception:
                self.server.untrack(raw)
                raise
            self.server.untrack(raw)
            self.server.track(tls_sock)
            self.request = tls_sock
            try:
                tls_sock.do_handshake()
            except Exception:
                self.server.untrack(tls_sock)
                tls_sock.close()
                raise
        super().setup()

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.untrack(self.request)
            if self._tls:
                try:
                    self.request.close()
                except OSError:
                    pass

    def log_message(self, format, *args):  # the base class names its parameter `format`
        pass

    @property
    def stop_event(self):
        return self.server.stop_event

    def wait_for_client_or_stop(self, seconds):
        """Sleep up to ``seconds`` (None: no limit); True if the server is stopping.

        Returns early when the client hangs up, so a hung exchange does not hold a thread
        (and an in-flight slot) long after its client has timed out.
        """
        deadline = None if seconds is None else time.monotonic() + seconds
        try:
            poller = select.poll()
            poller.register(self.connection, select.POLLIN | select.POLLHUP | select.POLLERR)
        except (OSError, ValueError):
            poller = None
        while True:
            step = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if step <= 0:
                return False
            if self.stop_event.wait(step):
                return True
            if poller is not None and poller.poll(0):
                return False  # EOF (or more bytes): nobody is waiting for this answer

    def read_body(self, cap=65536):
        """The request body (at most ``cap`` bytes are kept; the rest is read and dropped)."""
        length = self.headers.get('Content-Length')
        if not (length and length.isdigit()):
            return b''
        remaining, kept = int(length), bytearray()
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                break
            remaining -= len(chunk)
            kept += chunk[: max(0, cap - len(kept))]
        return bytes(kept)

    def discard_body(self):
        """Read a request body so the connection stays usable for the next request."""
        length = self.headers.get('Content-Length')
        if length and length.isdigit():
            remaining = int(length)
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)

    def send_bytes(self, status, body, content_type, headers=None, close=False):
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        if close:
            self.send_header('Connection', 'close')
            self.close_connection = True
        self.end_headers()
        if self.command != 'HEAD' and body:
            self.wfile.write(body)

    def send_json(self, status, payload, headers=None, close=False):
        body = b'' if payload is None else json.dumps(payload).encode('utf-8')
        self.send_bytes(status, body, 'application/json', headers, close)

    def drop_connection(self, reset=False):
        """End the exchange without sending a response (optionally with a TCP RST)."""
        self.close_connection = True
        if reset:
            try:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0)
                )
            except OSError:
                pass
        try:
            # The fd really closes once finish() drops the rfile/wfile references.
            self.connection.close()
        except OSError:
            pass


class BackgroundServer:
    """A ``_Server`` running ``serve_forever`` on a daemon thread."""

    def __init__(self, host, port, handler, owner, ssl_context=None):
        self.host = host
        self.requested_port = port
        self.handler = handler
        self.owner = owner
        self.ssl_context = ssl_context
        self.stop_event = threading.Event()
        self._server = None
        self._thread = None

    @property
    def running(self):
        return self._server is not None

    @property
    def accepted(self):
        return self._server.accepted if self._server is not None else 0

    @property
    def port(self):
        if self._server is None:
            return self.requested_port
        return self._server.server_address[1]

    def start(self):
        if self._server is not None:
            return self
        self.stop_event.clear()
        self._server = _Server(
            (self.host, self.requested_port),
            self.handler,
            self.owner,
            self.stop_event,
            self.ssl_context,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={'poll_interval': 0.02},
            name=f'sim-{type(self.owner).__name__}-{self.port}',
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self):
        server, thread = self._server, self._thread
        if server is None:
            return
        self.stop_event.set()  # wakes handlers sleeping on latency, hang or delay
        server.shutdown()
        server.server_close()
        server.abort_connections()
        thread.join(timeout=5)
        self._server = None
        self._thread = None


class Served:
    """What every simulator shares: it owns a ``BackgroundServer`` as ``self._server``, starts
    and stops it, works as a context manager and tells its port."""

    _server: BackgroundServer

    def start(self):
        self._server.start()
        return self

    def stop(self):
        self._server.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self._server.port


def tls_server_context(certfile, keyfile):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    return ctx
