"""XDR's response shapes: ``{"data": ...}`` and ``{"errors": [...], "data"?: ...}``."""

from collections.abc import Sequence

from flask import Response, jsonify

from api.telemetry import note_outcome
from ctim.answer import Answer
from errors import FATAL, RelayError, envelope


def data_response(data: object, warnings: Sequence[RelayError] = ()) -> Response:
    note_outcome('partial' if warnings else 'ok')
    return jsonify(envelope(data, warnings))


def error_response(
    errors: Sequence[RelayError], data: dict | list | None = None, status: int = 200
) -> Response:
    fatal = [e for e in errors if e.type == FATAL]
    note_outcome(fatal[0].code if fatal else 'partial')
    body = envelope(data or {}, errors)
    if not data:
        body.pop('data', None)
    response = jsonify(body)
    response.status_code = status
    return response


def answer_response(answer: Answer) -> Response:
    """An observe-style Answer: its data beside its warnings, or beside its fatal errors."""
    if answer.fatal:
        return error_response(answer.errors, data=answer.data)
    return data_response(answer.data, answer.warnings)
