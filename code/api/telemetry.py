"""What each request did, told once: a JSON log line and the request-latency metric.

The routes leave their facts in Flask's per-request ``g`` (the lookup's stats, the observables
by type, the outcome the envelope answered); nothing here reads a header or a body.
"""
import logging
import time
from collections import Counter

from flask import Blueprint, Response, g, request

from metrics import REQUEST_SECONDS, exposition

log = logging.getLogger('relay.request')
metrics_api = Blueprint('metrics', __name__)


@metrics_api.route('/metrics', methods=['GET'])
def metrics():
    body, content_type = exposition()
    return Response(body, content_type=content_type)


def note_lookup(observables, stats):
    """Called by a route that looks things up, so its log line can say what it cost."""
    g.observables = dict(Counter(o['type'] for o in observables))
    g.lookup_stats = stats


def note_outcome(outcome):
    g.outcome = outcome


def request_finished(response):
    route = request.url_rule.rule if request.url_rule is not None else 'unmatched'
    if route == '/metrics':
        return
    seconds = time.perf_counter() - g.get('started', time.perf_counter())
    outcome = g.get('outcome') or ('ok' if response.status_code < 400 else 'http error')
    REQUEST_SECONDS.labels(route, outcome).observe(seconds)
    fields = {'route': route, 'method': request.method, 'status': response.status_code,
              'outcome': outcome, 'duration_ms': round(seconds * 1000, 1)}
    if 'observables' in g:
        fields['observables'] = g.observables
    if 'lookup_stats' in g:
        fields.update(g.lookup_stats.as_dict())
    log.info('request', extra=fields)
