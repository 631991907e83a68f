"""Every failure a request meets is answered in XDR's envelope; ``init_app`` registers how.

Errors the caller can cause are HTTP 200 with ``{"errors": [...]}``, as XDR expects; an
unknown route or a wrong method keeps its 404 or 405, and an unexpected exception is logged by
where it happened, never by what it said.
"""

import logging
import traceback

from flask import Flask, Response, current_app, g
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from spycloud_relay.api.envelope import error_response
from spycloud_relay.errors import InternalServerError, InvalidArgumentError, RelayError, RouteError

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """Register the handlers; Flask picks the most specific one for each exception."""
    app.register_error_handler(RelayError, relay_error)
    app.register_error_handler(RequestEntityTooLarge, body_too_large)
    app.register_error_handler(MethodNotAllowed, method_not_allowed)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)


def relay_error(error: RelayError) -> Response:
    """A failure the relay named: its code and message are meant for the caller."""
    log.info('answered %s: %s', error.code, error.message)
    return error_response([error])


def body_too_large(error: RequestEntityTooLarge) -> Response:
    """Bodies over MAX_CONTENT_LENGTH are refused as they are read; say what the limit is."""
    limit = current_app.config['MAX_CONTENT_LENGTH']
    return error_response(
        [
            InvalidArgumentError(
                f'Request body too large: the limit is {limit} bytes (MAX_CONTENT_LENGTH).'
            )
        ]
    )


def method_not_allowed(error: MethodNotAllowed) -> Response:
    """405 in the envelope, with the Allow header HTTP asks for."""
    response = error_response([RouteError('method not allowed', error.description)], status=405)
    response.headers['Allow'] = ', '.join(sorted(error.valid_methods or ()))
    return response


def http_error(error: HTTPException) -> Response:
    """An unknown route keeps its 404 (a 405 is ``method_not_allowed``'s); any other HTTP
    error is the caller's input, answered as an invalid argument."""
    if error.code == 404:
        return error_response([RouteError(error.name.lower(), error.description)], status=404)
    return error_response([InvalidArgumentError(f'{error.name}: {error.description}')])


def unexpected_error(error: Exception) -> Response:
    """Logged with its frames and a request id to quote, not its message: a library's
    message can quote a header or a key."""
    log.error(
        'unexpected error (%s)',
        type(error).__name__,
        extra={'traceback': ''.join(traceback.format_tb(error.__traceback__))},
    )
    return error_response(
        [
            InternalServerError(
                f'The relay failed unexpectedly; quote request id {g.get("request_id", "-")} '
                'to its operator.'
            )
        ]
    )
