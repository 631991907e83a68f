"""The routes' answers: errors.envelope's body as a Flask response, its outcome noted for the
request's log line."""

from collections.abc import Sequence
from typing import Any

from flask import Response, jsonify

from spycloud_relay.api.telemetry import note_outcome
from spycloud_relay.ctim.answer import Answer
from spycloud_relay.errors import RelayError, envelope


def data_response(data: object, warnings: Sequence[RelayError] = ()) -> Response:
    note_outcome('partial' if warnings else 'ok')
    return jsonify(envelope(data, warnings))


def error_response(
    errors: Sequence[RelayError],
    data: dict[str, Any] | list[dict[str, Any]] | None = None,
    status: int = 200,
) -> Response:
    fatal = [e for e in errors if not e.is_warning]
    note_outcome(fatal[0].code if fatal else 'partial')
    response = jsonify(envelope(data or {}, errors))
    response.status_code = status
    return response


def answer_response(answer: Answer) -> Response:
    """An observe-style Answer: its data beside its warnings, or beside its fatal errors."""
    if answer.fatal:
        return error_response(answer.errors, data=answer.data)
    return data_response(answer.data, answer.warnings)
