"""Errors are data: each failure is a RelayError that renders into XDR's envelope.

XDR expects HTTP 200 with ``{"errors": [{type, code, message}]}``; partial
results travel beside warnings, so a warning is a RelayError too. This module
belongs to no layer: the web layer, the SpyCloud client and the CLI all speak
it, and it imports none of them.
"""

from collections.abc import Iterable, Sequence
from typing import Any

FATAL = 'fatal'
WARNING = 'warning'


class RelayError(Exception):
    code = 'unknown'
    type = FATAL

    def __init__(self, message: object) -> None:
        super().__init__(message)
        self.message = str(message)

    @property
    def is_warning(self) -> bool:
        """The one way to ask: a warning travels beside results, anything else stops them."""
        return self.type == WARNING

    def json(self) -> dict[str, str]:
        return {'type': self.type, 'code': self.code, 'message': self.message}


class AuthorizationError(RelayError):
    code = 'authorization error'

    def __init__(self, reason: str) -> None:
        super().__init__(f'Authorization failed: {reason}')


class InvalidArgumentError(RelayError):
    code = 'invalid argument'


class NotFoundError(RelayError):
    code = 'not found'


class InternalServerError(RelayError):
    code = 'internal error'


class TooManyRequestsError(RelayError):
    code = 'too many requests'


class UnknownError(RelayError):
    code = 'unknown'


class WatchdogError(RelayError):
    code = 'health check failed'

    def __init__(self) -> None:
        super().__init__('Invalid Health Check')


class RouteError(RelayError):
    """A failure answered with its own HTTP status: an unknown route, a wrong method, or a
    request gunicorn refused before the app saw it (serving.py)."""

    def __init__(self, code: str, message: object) -> None:
        super().__init__(message)
        self.code = code


class RelayWarning(RelayError):
    """A non-blocking problem reported beside partial results."""

    type = WARNING

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def unique_json(errors: Iterable[RelayError]) -> list[dict[str, str]]:
    """The errors as XDR's JSON, each said once (the same warning from several lookups)."""
    seen: set[tuple[tuple[str, str], ...]] = set()
    out: list[dict[str, str]] = []
    for error in errors:
        doc = error.json()
        key = tuple(doc.items())
        if key not in seen:
            seen.add(key)
            out.append(doc)
    return out


def envelope(data: object, errors: Sequence[RelayError] = ()) -> dict[str, Any]:
    """``{"data": ...}`` with ``"errors"`` beside it when there are any; empty data is left
    out of an answer that failed. The one builder of the envelope: the routes, the CLI and
    the gunicorn worker's refusals (serving.py) all answer with it."""
    body: dict[str, Any] = {}
    fatal = any(not error.is_warning for error in errors)
    if data or not fatal:
        body['data'] = data
    if errors:
        body['errors'] = unique_json(errors)
    return body
