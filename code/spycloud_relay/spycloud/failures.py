"""What a failed SpyCloud call means for the caller, read off two ordered tables.

A call fails one of two ways: SpyCloud answers with a status that is not a success
(``ANSWERS``), or the exchange itself fails: TLS, connection, timeout, a body that does not
decode, is over its cap or still arriving at the deadline (``EXCHANGES``). Each table's rows are
tried in order, as serving.py's ``refusal`` ladder is, and the first that applies names the
error and its message; the last row of each applies to anything. Whatever SpyCloud or a
library says is quoted only with the API key redacted from it, and trimmed.
"""

import json
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Generic, TypeVar

from urllib3 import BaseHTTPResponse
from urllib3 import exceptions as urllib3_exceptions

from spycloud_relay.bounded_read import BodyTooLarge, DeadlinePassed
from spycloud_relay.deadline import Deadline, DeadlineReached
from spycloud_relay.errors import (
    AuthorizationError,
    InternalServerError,
    NotFoundError,
    TooManyRequestsError,
    UnknownError,
)
from spycloud_relay.spycloud.retry import is_quota_exhausted

MAX_MESSAGE_CHARS = 300
KEY_PROBLEMS = ('invalid api key', 'invalid ip', 'api key')


class Refused(AuthorizationError):
    """A 403 that is not about the key or the caller's IP: this selector is not for this key
    (SpyCloud searches only the identifiers on the customer's verified watchlist)."""


class GatewayTimeout(UnknownError):
    """SpyCloud's gateway gave up on the query (504): a smaller one may be answered."""


class BadRequest(Exception):
    """SpyCloud's 400: the relay reads it as 'no data' for the selector."""


@dataclass(frozen=True)
class Answer:
    """An answer that is not a success, as the rows of ``ANSWERS`` read it."""

    response: BaseHTTPResponse
    content: bytes
    api_key: str | None

    @property
    def status(self) -> int:
        return self.response.status

    @cached_property
    def message(self) -> str:
        return upstream_message(self.response, self.content, self.api_key)

    @property
    def about_the_key(self) -> bool:
        """SpyCloud-Error names the key or the caller's IP (a 403 that is not a refusal)."""
        detail = self.response.headers.get('SpyCloud-Error', '').lower()
        return any(problem in detail for problem in KEY_PROBLEMS)

    @property
    def quota_exhausted(self) -> bool:
        return is_quota_exhausted(self.response.headers)


@dataclass(frozen=True)
class Failure:
    """An exchange that failed, as the rows of ``EXCHANGES`` read it."""

    error: BaseException
    api_key: str | None
    host: str
    deadline: Deadline

    @cached_property
    def reason(self) -> BaseException:
        return innermost(self.error)

    @cached_property
    def text(self) -> str:
        """The reason's words (a library's text can quote a header): the key redacted."""
        return redact(' '.join(str(self.reason).split()), self.api_key)[:MAX_MESSAGE_CHARS]


Case = TypeVar('Case', Answer, Failure)


@dataclass(frozen=True)
class Row(Generic[Case]):
    """Where ``applies``, the error is ``kind``: with ``template`` filled from the case's
    attributes (``{message}``, ``{host}``...), or with no message when there is none."""

    applies: Callable[[Case], bool]
    kind: Callable[..., Exception]
    template: str | None = None

    def error(self, case: Case) -> Exception:
        if self.template is None:
            return self.kind()
        return self.kind(self.template.format_map(_Fields(case)))


class _Fields(dict[str, object]):
    """A template's fields, each read off the case when the template names it."""

    def __init__(self, case: object) -> None:
        super().__init__()
        self._case = case

    def __missing__(self, name: str) -> object:
        return getattr(self._case, name)


REDIRECT = (
    'SpyCloud answered HTTP {status}, a redirect, which the relay does '
    'not follow (the API key would go along): check SPYCLOUD_API_URL.'
)
QUOTA = 'The SpyCloud monthly quota of this API key is exhausted; SpyCloud support can raise it.'
THROTTLED = 'Too many requests have been made to SpyCloud. Please, try again later.'

ANSWERS: tuple[Row[Answer], ...] = (
    Row(lambda a: 300 <= a.status < 400, UnknownError, REDIRECT),
    Row(lambda a: a.status == 400, BadRequest, '{message}'),
    Row(lambda a: a.status == 403 and not a.about_the_key, Refused, '{message}'),
    Row(lambda a: a.status in (401, 403), AuthorizationError, '{message}'),
    Row(
        lambda a: a.status == 404,
        NotFoundError,
        'The SpyCloud API answered 404 Not Found: check SPYCLOUD_API_URL.',
    ),
    Row(lambda a: a.status == 429 and a.quota_exhausted, TooManyRequestsError, QUOTA),
    Row(lambda a: a.status == 429, TooManyRequestsError, THROTTLED),
    Row(lambda a: a.status == 500, InternalServerError, 'The SpyCloud internal error: {message}'),
    Row(lambda a: a.status == 504, GatewayTimeout, 'SpyCloud answered HTTP {status}: {message}'),
    Row(lambda a: True, UnknownError, 'SpyCloud answered HTTP {status}: {message}'),
)

EXCHANGES: tuple[Row[Failure], ...] = (
    # The body's own bounds first: they are what ended the read, whatever the clock says now.
    Row(
        lambda f: isinstance(f.error, BodyTooLarge),
        UnknownError,
        'SpyCloud sent an answer larger than {error.max_bytes} bytes.',
    ),
    Row(lambda f: isinstance(f.error, DeadlinePassed), DeadlineReached),
    Row(
        lambda f: isinstance(f.reason, (urllib3_exceptions.SSLError, ssl.SSLError)),
        UnknownError,
        'Unable to verify SSL certificate: {text}',
    ),
    Row(lambda f: f.deadline.expired, DeadlineReached),
    Row(
        lambda f: isinstance(f.error, urllib3_exceptions.DecodeError),
        UnknownError,
        'SpyCloud sent a compressed answer that does not decode.',
    ),
    Row(lambda f: timed_out(f.reason), UnknownError, 'SpyCloud did not answer in time ({host}).'),
    Row(
        lambda f: isinstance(
            f.reason,
            (urllib3_exceptions.NewConnectionError, urllib3_exceptions.ProtocolError, OSError),
        ),
        UnknownError,
        'Unable to connect to SpyCloud at {host}: {text}',
    ),
    Row(lambda f: True, UnknownError, 'The request to SpyCloud failed: {text}'),
)


def first_error(rows: Sequence[Row[Case]], case: Case) -> Exception:
    """The error of the first row that applies (the last row of a table applies to all)."""
    return next(row for row in rows if row.applies(case)).error(case)


def answer_error(response: BaseHTTPResponse, content: bytes, api_key: str | None) -> Exception:
    """What an answer that is not a 2xx raises: a RelayError, or BadRequest for a 400."""
    return first_error(ANSWERS, Answer(response, content, api_key))


def exchange_error(
    error: BaseException, *, api_key: str | None, host: str, deadline: Deadline
) -> Exception:
    """What a failed exchange raises: a RelayError, or DeadlineReached once time is up."""
    return first_error(EXCHANGES, Failure(error, api_key, host, deadline))


def upstream_message(response: BaseHTTPResponse, content: bytes, api_key: str | None) -> str:
    """SpyCloud's own words for an error, trimmed, without the API key should it echo it."""
    message = ''
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict):
        for name in ('message', 'errorMessage', 'error'):
            if isinstance(body.get(name), str) and body[name].strip():
                message = body[name].strip()
                break
    message = message or response.reason or f'HTTP {response.status}'
    detail = response.headers.get('SpyCloud-Error', '').strip()
    if detail and detail.lower() not in message.lower():
        message = f'{message} ({detail})'
    return redact(' '.join(message.split()), api_key)[:MAX_MESSAGE_CHARS]


def timed_out(reason: BaseException) -> bool:
    if isinstance(reason, urllib3_exceptions.NewConnectionError):  # a subclass of the timeout
        return False
    return isinstance(reason, (urllib3_exceptions.TimeoutError, TimeoutError))


def innermost(error: BaseException) -> BaseException:
    """The error under urllib3's wrappers (MaxRetryError.reason, ProtocolError's cause)."""
    reason = error
    for _ in range(6):
        inner = getattr(reason, 'reason', None)
        if not isinstance(inner, BaseException):
            args = getattr(reason, 'args', ())
            inner = next((a for a in args if isinstance(a, BaseException)), None)
        if not isinstance(inner, BaseException):
            break
        reason = inner
    return reason


def redact(text: str, secret: str | None) -> str:
    """``text`` without ``secret``, whole or as any of its lines (a wrapped key is quoted
    line by line in some messages)."""
    if not secret:
        return text
    for part in sorted({secret, *secret.splitlines(), secret.strip()}, key=len, reverse=True):
        if len(part.strip()) >= 4:
            text = text.replace(part, '[redacted]')
    return text
