"""The gunicorn worker (``worker_class`` in gunicorn_conf.py): gevent, answering in the envelope.

gevent, because a connection that is idle or sends its request slowly then costs a greenlet
out of ``worker_connections`` (1000), not one of a handful of threads: with the threaded
worker, eight sockets that sent half a request head silenced a worker, /watchdog included.

What gunicorn refuses itself (a request line or header it cannot parse, or over its limits)
never reaches the app; this worker answers it in the relay's JSON envelope instead of
gunicorn's HTML page, with gunicorn's status code (the request was not understood, so there is
no module answer to wrap in a 200, and a proxy or client sees what went wrong) and
``Connection: close``. The messages are fixed texts: the request's bytes, which could hold a
token, are never echoed, nor logged.
"""

import json
from collections.abc import Sequence
from datetime import timedelta
from socket import socket
from ssl import SSLError

from gunicorn import util
from gunicorn.config import Config
from gunicorn.http import errors as http
from gunicorn.http.message import Request
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers.ggevent import GeventWorker

from spycloud_relay.errors import RouteError, envelope

INVALID_ARGUMENT = 'invalid argument'
INTERNAL_ERROR = 'internal error'
BAD_REQUEST = (400, 'Bad Request')
Refusal = tuple[int, str, str, str]
INTERNAL: Refusal = (
    500,
    'Internal Server Error',
    INTERNAL_ERROR,
    'The relay failed unexpectedly; the details are in its log.',
)


# What gunicorn's parse errors mean for the caller, in order (a subclass before its parent);
# the two limits, whose messages quote the configured bound, are worked out in _limit.
REFUSALS: tuple[tuple[tuple[type[BaseException], ...], Refusal], ...] = (
    # The app's fault (these subclass InvalidHeader*), not the client's.
    ((http.InvalidResponseHeader, http.InvalidResponseHeaderName), INTERNAL),
    (
        (http.InvalidRequestLine, http.InvalidRequestMethod),
        (*BAD_REQUEST, INVALID_ARGUMENT, 'The request line is not valid HTTP.'),
    ),
    (
        (http.InvalidHTTPVersion,),
        (*BAD_REQUEST, INVALID_ARGUMENT, 'The HTTP version is not supported.'),
    ),
    (
        (
            http.InvalidHeader,
            http.InvalidHeaderName,
            http.ObsoleteFolding,
            http.InvalidSchemeHeaders,
        ),
        (*BAD_REQUEST, INVALID_ARGUMENT, 'A request header is not valid HTTP.'),
    ),
    (
        (http.InvalidChunkSize, http.ChunkMissingTerminator, http.InvalidChunkExtension),
        (
            *BAD_REQUEST,
            INVALID_ARGUMENT,
            'The request body could not be read: malformed chunked encoding.',
        ),
    ),
    (
        (http.UnsupportedTransferCoding,),
        (
            501,
            'Not Implemented',
            INVALID_ARGUMENT,
            "The request's Transfer-Encoding is not supported.",
        ),
    ),
    (
        (http.ExpectationFailed,),
        (417, 'Expectation Failed', INVALID_ARGUMENT, "The request's Expect header cannot be met."),
    ),
    (
        (http.InvalidProxyLine, http.InvalidH2CPreface),
        (*BAD_REQUEST, INVALID_ARGUMENT, 'The request is not valid HTTP.'),
    ),
    (
        (http.ForbiddenProxyRequest,),
        (403, 'Forbidden', INVALID_ARGUMENT, 'PROXY protocol requests are not allowed.'),
    ),
    ((SSLError,), (403, 'Forbidden', INVALID_ARGUMENT, 'The TLS handshake failed.')),
    (
        (http.ConfigurationProblem,),
        (
            500,
            'Internal Server Error',
            INTERNAL_ERROR,
            "The relay's HTTP server is misconfigured; see its log.",
        ),
    ),
)


def refusal(exc: BaseException, cfg: Config) -> Refusal:
    """(status, reason, code, message) for an error gunicorn raised before the app answered."""
    limit = _limit(exc, cfg)
    if limit is not None:
        return limit
    for kinds, answer in REFUSALS:
        if isinstance(exc, kinds):
            return answer
    return INTERNAL


def _limit(exc: BaseException, cfg: Config) -> Refusal | None:
    """A request line or headers over gunicorn's limits, naming the limit."""
    if isinstance(exc, http.LimitRequestLine):
        return (
            414,
            'URI Too Long',
            INVALID_ARGUMENT,
            f'The request line is too long: the limit is {cfg.limit_request_line} bytes.',
        )
    if not isinstance(exc, http.LimitRequestHeaders):
        return None
    if str(exc) == 'limit request headers fields size':  # gunicorn's fixed texts
        message = (
            f'A request header is too large: the limit is '
            f'{cfg.limit_request_field_size} bytes per header line.'
        )
    elif str(exc) == 'limit request headers fields':
        message = f'Too many request headers: the limit is {cfg.limit_request_fields}.'
    else:
        message = 'The request headers are too large.'
    return (431, 'Request Header Fields Too Large', INVALID_ARGUMENT, message)


def error_answer(status: int, reason: str, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 answer carrying the envelope's ``{"errors": [...]}``, closing the
    connection."""
    body = json.dumps(envelope({}, [RouteError(code, message)]))
    return (
        f'HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n'
        f'Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}'
    ).encode()


# gunicorn ships no type information (pyproject.toml's override), so its worker class is Any;
# unused-ignore: only the strict check forbids subclassing Any.
class RelayWorker(GeventWorker):  # type: ignore[misc, unused-ignore]
    """gunicorn's gevent worker; its refusals and failures are answered in the envelope."""

    def handle_error(
        self,
        req: Request | None,
        client: socket,
        addr: Sequence[object] | None,
        exc: BaseException,
    ) -> None:
        status, reason, code, message = refusal(exc, self.cfg)
        addr = addr or ('', -1)  # a unix socket
        if code == INTERNAL_ERROR:
            self.log.exception('unexpected error while serving a request (%s)', type(exc).__name__)
        else:
            self.log.warning(
                'refused a request from %s with %d: %s (%s)',
                addr[0],
                status,
                message,
                type(exc).__name__,
            )
        answer = error_answer(status, reason, code, message)
        req = req or getattr(exc, 'req', None)
        if isinstance(req, Request):
            self._log_access(req, client, addr, status, reason, len(answer))
        try:
            util.write_nonblock(client, answer)
        except Exception:  # the client is gone: nothing more to tell it
            self.log.debug('failed to send the error answer')

    def _log_access(
        self,
        req: Request,
        client: socket,
        addr: Sequence[object],
        status: int,
        reason: str,
        sent: int,
    ) -> None:
        environ = default_environ(req, client, self.cfg)
        environ['REMOTE_ADDR'], environ['REMOTE_PORT'] = addr[0], str(addr[1])
        environ['PATH_INFO'] = getattr(req, 'path', None)  # as the access log of an answer
        response = Response(req, client, self.cfg)
        response.status, response.status_code, response.sent = f'{status} {reason}', status, sent
        self.log.access(response, req, environ, timedelta(0))
