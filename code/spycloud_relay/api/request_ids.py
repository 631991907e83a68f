"""A request id for every request, so a log line can be traced without a token or a key.

The caller's ``X-Request-Id`` is kept when it is a plain one, a new id is made otherwise, and
the answer echoes it. Log lines name it through logs.RequestIdFilter.
"""

import re
import uuid

from flask import Flask, Response, g, request

REQUEST_ID = re.compile(r'^[A-Za-z0-9._-]{1,64}$')


def init_app(app: Flask) -> None:
    """Assign the id before anything else runs, and echo it on every answer."""
    app.before_request(assign_request_id)
    app.after_request(echo_request_id)


def assign_request_id() -> None:
    """Only ids of a safe shape are taken over: they end up in log lines and headers."""
    offered = request.headers.get('X-Request-Id', '')
    g.request_id = offered if REQUEST_ID.match(offered) else uuid.uuid4().hex[:16]


def echo_request_id(response: Response) -> Response:
    """The caller can quote the id to the operator, who finds it in the logs."""
    response.headers['X-Request-Id'] = g.get('request_id', '')
    return response
