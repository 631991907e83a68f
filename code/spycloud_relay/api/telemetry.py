"""What each request did, told once: a JSON log line and the request-latency metric.

The routes leave their facts in Flask's per-request ``g`` (the lookup's stats, the observables
by type, the outcome the envelope answered); nothing here reads a header or a body.
"""

import logging
import time
from collections import Counter
from collections.abc import Iterable

from flask import Blueprint, Flask, Response, g, request

from spycloud_relay.metrics import REQUEST_SECONDS, exposition
from spycloud_relay.spycloud.lookup import LookupStats

log = logging.getLogger('relay.request')  # a documented name (README), not __name__
metrics_api = Blueprint('metrics', __name__)


def init_app(app: Flask) -> None:
    """Time every request and tell it once it is answered (the /metrics route is optional)."""
    app.before_request(request_started)
    app.after_request(request_finished)


@metrics_api.route('/metrics', methods=['GET'])
def metrics() -> Response:
    """The counts of every worker, in Prometheus' text format."""
    body, content_type = exposition()
    return Response(body, content_type=content_type)


def note_lookup(types: Iterable[str], stats: LookupStats) -> None:
    """Called by a route that looks things up with the types of what it asks about, so its
    log line can say what it cost."""
    g.observables = dict(Counter(types))
    g.lookup_stats = stats


def note_outcome(outcome: str) -> None:
    """What the envelope answered, for the log line and the latency metric's label."""
    g.outcome = outcome


def request_started() -> None:
    g.started = time.perf_counter()


def request_finished(response: Response) -> Response:
    """One log line and one latency sample per request; /metrics itself is not counted."""
    route = request.url_rule.rule if request.url_rule is not None else 'unmatched'
    if route == '/metrics':
        return response
    seconds = time.perf_counter() - g.get('started', time.perf_counter())
    outcome = g.get('outcome') or ('ok' if response.status_code < 400 else 'http error')
    REQUEST_SECONDS.labels(route, outcome).observe(seconds)
    fields = {
        'route': route,
        'method': request.method,
        'status': response.status_code,
        'outcome': outcome,
        'duration_ms': round(seconds * 1000, 1),
    }
    if 'observables' in g:
        fields['observables'] = g.observables
    if 'lookup_stats' in g:
        fields.update(g.lookup_stats.as_dict())
    log.info('request', extra=fields)
    return response
