"""A local SpyCloud Enterprise API v2 (``/enterprise-v2/``) over real HTTP(S).

The relay's client code (sessions, keep-alive, timeouts, retries, paging, error mapping) is the
thing under test, so this is a socket server rather than a ``requests`` mock. Behaviour follows
the SpyCloud API spec (kept outside this repository); knobs and fault injection let tests
provoke every documented failure on demand.
"""

import datetime
import functools
import gzip
import json
import re
import threading
import time
import uuid
from urllib.parse import parse_qs, unquote

from . import compass, data, tenant
from ._http import BackgroundServer, BaseHandler, Served, reason, tls_server_context

__all__ = ['SpyCloudSimulator', 'Fault', 'FAULT_MODES', 'ENDPOINTS']

PREFIX = '/enterprise-v2/'
ENDPOINTS = (
    'emails',
    'domains',
    'ips',
    'usernames',
    'watchlist-records',
    'catalog',
    'watchlist',
    'watchlist-create',
    'watchlist-delete',
    'watchlist-verify',
    'compass-device-records',
    'compass-devices',
    'other',
)
FAULT_MODES = (
    'status',
    'reset',
    'hang',
    'stall',
    'truncated',
    'incomplete',
    'html',
    'drip',
    'raw',
)
# How a comma list of e-mails is read: as documented ('list', up to EMAIL_LIST_MAX addresses),
# as one odd address that matches nothing ('literal'), or refused with a 400 ('refuse').
EMAIL_LISTS = ('list', 'literal', 'refuse')
EMAIL_LIST_MAX = 10
_DOMAIN_TYPES = ('corporate', 'infected', 'email_domain', 'target_domain')
# SpyCloud's words for a key without an endpoint's product (spec §4: an explicit deny).
COMPASS_DENIED = 'User is not authorized to access this resource with an explicit deny.'


class _BadRequest(Exception):
    def __init__(self, name, detail=''):
        super().__init__(name)
        message = f"[BadRequest] Invalid parameter: '{name}'."
        self.body = {
            'errorType': 'BadRequest',
            'errorMessage': f'{message} {detail}' if detail else message,
        }


@functools.lru_cache(maxsize=64)
def _records(kind, value):
    # Handlers only read these dicts, so one shared copy per observable is safe and makes a
    # 100k-record bench query cost its generation once, not once per page.
    return tuple(data.records_for(kind, value))


def _route(raw_path):
    """(endpoint, args) for a raw request path; endpoint "other" when nothing matches."""
    if not raw_path.startswith(PREFIX):
        return 'other', None
    parts = [unquote(p) for p in raw_path[len(PREFIX) :].split('/')]
    if parts == ['breach', 'data', 'watchlist']:
        return 'watchlist-records', None
    if len(parts) == 4 and parts[:2] == ['breach', 'data'] and parts[2] in data.KINDS:
        if parts[3]:
            return parts[2], parts[3]
    elif len(parts) == 4 and parts[:3] == ['compass', 'data', 'devices'] and parts[3]:
        return 'compass-device-records', parts[3]
    elif parts == ['compass', 'devices']:
        return 'compass-devices', None
    elif len(parts) == 3 and parts[:2] == ['breach', 'catalog'] and parts[2]:
        return 'catalog', parts[2]
    elif len(parts) == 2 and parts == ['watchlist', 'create']:
        return 'watchlist-create', None
    elif len(parts) == 2 and parts[0] == 'watchlist' and parts[1]:
        return 'watchlist', parts[1]
    elif (
        len(parts) == 3
        and parts[0] == 'watchlist'
        and parts[1]
        and parts[2] in ('delete', 'verify')
    ):
        return 'watchlist-' + parts[2], parts[1]
    return 'other', None


# Which method each watchlist endpoint takes (spec §5); the breach endpoints take GET.
_METHODS = {'watchlist-create': ('POST',), 'watchlist-delete': ('DELETE',)}


def _first(query, name):
    values = query.get(name)
    return values[0] if values else None


def _int_list(query, name):
    raw = _first(query, name)
    if raw is None or not raw.strip():
        return None
    try:
        return {int(item) for item in raw.split(',')}
    except ValueError:
        raise _BadRequest(
            name, 'Must be an integer or a comma-separated list of integers.'
        ) from None


def _date(query, name):
    raw = _first(query, name)
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    try:
        if len(raw) == 10:
            return datetime.datetime.combine(datetime.date.fromisoformat(raw), datetime.time())
        moment = datetime.datetime.fromisoformat(raw.replace('Z', '+00:00'))
    except ValueError:
        raise _BadRequest(name, 'Expected YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[Z].') from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.UTC).replace(tzinfo=None)
    return moment


def _until_modified(query):
    """``until_modification_date``: a date-only one takes in that whole day, as modification
    dates carry a time of day (publish dates are midnight stamps)."""
    until = _date(query, 'until_modification_date')
    raw = (_first(query, 'until_modification_date') or '').strip()
    if until is not None and len(raw) == 10:
        return datetime.datetime.combine(until.date(), datetime.time.max)
    return until


def _modification_range(query):
    return _date(query, 'since_modification_date'), _until_modified(query)


def _publish_moment(record):
    return datetime.datetime.strptime(record['spycloud_publish_date'], '%Y-%m-%dT%H:%M:%SZ')


def _modification_moment(record):
    """When the record last changed: its ``record_modification_date``, else its publish date."""
    stamp = record.get('record_modification_date')
    try:
        return datetime.datetime.strptime(stamp, '%Y-%m-%dT%H:%M:%SZ')
    except (TypeError, ValueError):
        return _publish_moment(record)


def _outside(moment, since, until):
    return (since is not None and moment < since) or (until is not None and moment > until)


def _filter(records, query):
    severities = _int_list(query, 'severity')
    sources = _int_list(query, 'source_id')
    since = _date(query, 'since')
    until = _date(query, 'until')
    since_modified, until_modified = _modification_range(query)
    rtype = _first(query, 'type')
    if rtype is not None and rtype.strip() and rtype not in _DOMAIN_TYPES:
        raise _BadRequest('type', 'Must be one of {}.'.format(', '.join(_DOMAIN_TYPES)))
    out = []
    for record in records:
        if severities is not None and record['severity'] not in severities:
            continue
        if sources is not None and record['source_id'] not in sources:
            continue
        if rtype == 'infected' and record['severity'] != 25:
            continue
        # Publish dates are midnight stamps, so a date-only ``until`` includes that day.
        if (since or until) and _outside(_publish_moment(record), since, until):
            continue
        if (since_modified or until_modified) and _outside(
            _modification_moment(record), since_modified, until_modified
        ):
            continue
        out.append(record)
    return out


class Fault:
    """One injected misbehaviour; returned by ``SpyCloudSimulator.add_fault``."""

    def __init__(self, mode, status, match, times, headers, body, delay, hold=None):
        if mode not in FAULT_MODES:
            raise ValueError('mode must be one of {}'.format(', '.join(FAULT_MODES)))
        self.mode = mode
        self.status = status
        self.match = match
        self.pattern = re.compile(match) if match is not None else None
        self.remaining = times
        self.headers = dict(headers or {})
        self.body = body
        self.delay = delay
        self.hold = hold
        self.hits = 0
        self.taken = threading.Event()  # set once a request has met this fault

    @property
    def exhausted(self):
        return self.remaining is not None and self.remaining <= 0

    def matches(self, raw_path):
        if self.pattern is None:
            return True
        return bool(self.pattern.search(raw_path) or self.pattern.search(unquote(raw_path)))

    def __repr__(self):
        return (
            f'Fault(mode={self.mode!r}, status={self.status!r}, match={self.match!r}, '
            f'remaining={self.remaining!r}, hits={self.hits})'
        )


class _Cursor:
    __slots__ = ('api_key', 'results', 'offset', 'issued')

    def __init__(self, api_key, results, offset):
        self.api_key = api_key
        self.results = results
        self.offset = offset
        self.issued = time.monotonic()


class _Handler(BaseHandler):
    sim_entry = None  # the request_log entry of the exchange in progress

    def send_response(self, code, message=None):
        # Book the request as finished (status, in_flight) before the client can see the
        # answer, so a test reading stats() right after its response sees settled numbers.
        self.server.owner._finish(self, code)
        super().send_response(code, message)

    def do_GET(self):
        self.server.owner._serve(self)

    def do_HEAD(self):
        self.server.owner._serve(self)

    def do_POST(self):
        self.body = self.read_body()
        self.server.owner._serve(self)

    do_PUT = do_PATCH = do_DELETE = do_POST


class SpyCloudSimulator(Served):
    """SpyCloud Enterprise API v2 on 127.0.0.1; attributes below may be changed at any time.

    ``page_size``, ``latency`` (s), ``api_keys`` (set), ``missing_catalogs`` (set of ids),
    ``cursor_ttl`` (s), ``rate_limit`` (None or (rps, burst) per key), ``retry_after``
    (None or seconds, on throttling 429s), ``monthly_quota`` (None or accepted requests per key),
    ``gzip`` (compress JSON answers for a client that accepts gzip, as API Gateways may).
    Each API key has its own watchlist (``watchlist(key)``), seeded with SEED_WATCHLIST;
    ``breach/data/watchlist`` serves the demo tenant's records (simulator/tenant.py).
    ``watchlist_max_days``: a watchlist query spanning more days than this answers 504 after
    ``watchlist_timeout_s``, as SpyCloud's gateway does for large watchlists (None: never).
    ``email_lists``: how ``breach/data/emails/a@x,b@y`` is read, one of EMAIL_LISTS (spec §2:
    the OpenAPI reportedly takes up to ten addresses, newest records first across them).
    ``watchlist_records``: None for the demo tenant, or a list of raw records that
    ``breach/data/watchlist`` serves instead, filtered and paged alike (hostile strings, odd
    field types, a repeated record); ``catalog_overrides`` (id → fields): merged into that
    catalog's entry (a hostile title, uuid or site).
    ``lookup_records`` ((kind, value) → list of raw records): what ``breach/data/{kind}/{value}``
    serves instead of the generated records (``kind`` one of data.KINDS, ``value`` as the URL
    has it, lower-cased for e-mails, domains and IPs), filtered and paged alike: a record set a
    test writes field by field (session cookies, passwords against a policy).
    ``publish(records)`` and ``modify(document_id, **fields)``: the tenant changing between two
    syncs (records SpyCloud publishes, records it updates), kept until ``reset()``.
    Compass (simulator/compass.py): ``compass/data/devices/{id,id,...}`` (the machines' records,
    paged like the others) and ``compass/devices`` (the tenant's infected machines of a period);
    ``compass_denied`` (set of keys): keys without the Compass product, answered 403.
    """

    def __init__(
        self,
        host='127.0.0.1',
        port=0,
        api_keys=(data.DEFAULT_API_KEY,),
        page_size=1000,
        latency=0.0,
        tls=None,
    ):
        self.host = host
        self.api_keys = set(api_keys)
        self.tls = tls
        self._defaults = dict(page_size=page_size, latency=latency)
        self._watchlists = {}
        self._lock = threading.Lock()
        self._faults = []
        self._cursors = {}
        self._changed = {}
        self._buckets = {}
        self._quota_used = {}
        self.reset()
        self._log = []
        self._requests = 0
        self._by_endpoint = dict.fromkeys(ENDPOINTS, 0)
        self._in_flight = 0
        self._max_in_flight = 0
        self._connections_base = 0
        ctx = tls_server_context(*tls) if tls else None
        self._server = BackgroundServer(host, port, _Handler, self, ctx)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self):
        scheme = 'https' if self.tls else 'http'
        return f'{scheme}://{self.host}:{self.port}{PREFIX}'

    # -- fault injection -------------------------------------------------------------------

    def add_fault(
        self,
        status=None,
        *,
        match=None,
        times=None,
        headers=None,
        body=None,
        mode='status',
        delay=0.0,
        hold=None,
    ):
        """Queue a misbehaviour; faults are tried in order before auth and normal handling.

        ``hold``: a threading.Event the answer waits for, so that a test orders concurrent
        requests exactly (``fault.taken`` tells it the request has arrived)."""
        fault = Fault(mode, status, match, times, headers, body, delay, hold)
        with self._lock:
            self._faults.append(fault)
        return fault

    def refuse_parameter(self, name, detail='', *, match=None, times=None):
        """Queue SpyCloud's 400 for a parameter it refuses, in its own words:
        ``[BadRequest] Invalid parameter: '<name>'. <detail>``."""
        return self.add_fault(400, match=match, times=times, body=_BadRequest(name, detail).body)

    def remove_fault(self, fault):
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear_faults(self):
        with self._lock:
            self._faults.clear()

    def throttle(self, times=1, *, match=None, retry_after=None):
        """429 as API Gateway sends it when the per-key rate is exceeded."""
        headers = {'x-amzn-ErrorType': 'TooManyRequestsException'}
        retry_after = self.retry_after if retry_after is None else retry_after
        if retry_after is not None:
            headers['Retry-After'] = _header_number(retry_after)
        return self.add_fault(
            429, match=match, times=times, headers=headers, body={'message': 'Too Many Requests'}
        )

    def quota_exhausted(self, times=None, *, match=None):
        """429 for a used-up monthly quota: clients must not retry this one."""
        return self.add_fault(
            429,
            match=match,
            times=times,
            headers={'x-amzn-ErrorType': 'LimitExceededException'},
            body={'message': 'Limit Exceeded'},
        )

    def forbidden_ip(self, times=None, *, match=None):
        """403 for a caller outside the key's IP allow-list."""
        return self.add_fault(
            403,
            match=match,
            times=times,
            headers={'SpyCloud-Error': 'Invalid IP 1.2.3.4'},
            body={'message': 'Forbidden'},
        )

    def _take_fault(self, raw_path):
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or not fault.matches(raw_path):
                    continue
                fault.hits += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
                fault.taken.set()
                return fault
        return None

    # -- cursors and quota -----------------------------------------------------------------

    def expire_cursors(self):
        """Forget every cursor, as if the TTL had passed for all of them."""
        with self._lock:
            self._cursors.clear()

    def reset_quota(self):
        with self._lock:
            self._quota_used.clear()
            self._buckets.clear()

    # -- observability ---------------------------------------------------------------------

    def stats(self):
        with self._lock:
            return {
                'requests': self._requests,
                'by_endpoint': dict(self._by_endpoint),
                'max_in_flight': self._max_in_flight,
                'in_flight': self._in_flight,
                'quota_used': dict(self._quota_used),
                'open_cursors': len(self._cursors),
                'connections': self._server.accepted - self._connections_base,
            }

    def reset(self):
        """Every knob back to how the simulator started, no fault queued, the watchlists
        reseeded and the stats zeroed: a session's simulator serves each test afresh."""
        self.page_size = self._defaults['page_size']
        self.latency = self._defaults['latency']
        self.missing_catalogs = set()
        self.cursor_ttl = 120.0
        self.rate_limit = None
        self.retry_after = None
        self.monthly_quota = None
        self.gzip = False
        self.watchlist_max_days = None
        self.watchlist_timeout_s = 0.0
        self.email_lists = 'list'
        self.watchlist_records = None
        self.lookup_records = {}
        self.catalog_overrides = {}
        self.compass_denied = set()
        with self._lock:
            self._changed = {}
        self.clear_faults()
        self.reset_watchlists()
        self.expire_cursors()
        self.reset_quota()
        if hasattr(self, '_server'):
            self.reset_stats()

    def reset_stats(self):
        with self._lock:
            self._requests = 0
            self._connections_base = self._server.accepted
            self._by_endpoint = dict.fromkeys(ENDPOINTS, 0)
            self._max_in_flight = self._in_flight
            self._log = []

    @property
    def request_log(self):
        """Snapshot of the requests seen so far, in arrival order."""
        with self._lock:
            return list(self._log)

    # -- request handling ------------------------------------------------------------------

    def _serve(self, handler):
        raw_path, _, raw_query = handler.path.partition('?')
        endpoint, arg = _route(raw_path)
        query = parse_qs(raw_query, keep_blank_values=True)
        api_key = None
        for name, value in handler.headers.items():
            if name.lower() == 'x-api-key':
                api_key = value.strip()
                break
        entry = {
            'method': handler.command,
            'path': raw_path,
            'endpoint': endpoint,
            'query': query,
            'api_key': api_key,
            'status': None,
            'time': time.time(),
        }
        handler.sim_entry = entry
        with self._lock:
            self._requests += 1
            self._by_endpoint[endpoint] += 1
            self._log.append(entry)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            latency = self.latency
            if latency and handler.stop_event.wait(latency):
                handler.drop_connection()
                return
            fault = self._take_fault(handler.path)
            if fault is not None:
                entry['fault'] = fault.mode
                self._apply_fault(handler, fault)
                return
            status, body, headers = self._respond(
                handler.command, endpoint, arg, query, api_key, getattr(handler, 'body', b'')
            )
            if (
                self.gzip
                and body is not None
                and 'gzip' in handler.headers.get('Accept-Encoding', '')
            ):
                packed = gzip.compress(json.dumps(body).encode('utf-8'), 6)
                handler.send_bytes(
                    status, packed, 'application/json', {**headers, 'Content-Encoding': 'gzip'}
                )
                return
            handler.send_json(status, body, headers)
        finally:
            self._finish(handler, None)

    def _finish(self, handler, status):
        """Record the outcome once per request: at the status line, or at the end if none."""
        entry = getattr(handler, 'sim_entry', None)
        if entry is None:
            return
        handler.sim_entry = None
        with self._lock:
            entry['status'] = status
            self._in_flight -= 1

    @staticmethod
    def _apply_fault(handler, fault):
        """Play ``fault`` on ``handler``'s exchange (the fake XDR plays its faults with it too)."""
        mode = fault.mode
        if fault.hold is not None:
            while not fault.hold.wait(0.05):
                if handler.stop_event.is_set():
                    handler.drop_connection()
                    return
        if mode == 'reset':
            handler.drop_connection(reset=True)
            return
        if mode == 'hang':
            handler.wait_for_client_or_stop(fault.delay)
            handler.drop_connection()
            return
        if mode == 'stall':
            # The head after ``delay`` seconds, promising a body that never comes.
            if handler.wait_for_client_or_stop(fault.delay):
                return
            try:
                handler.send_response(fault.status or 200)
                handler.send_header('Content-Type', 'application/json')
                handler.send_header('Content-Length', '1000')
                handler.end_headers()
                handler.wfile.write(b'{')
                handler.wfile.flush()
            except OSError:
                pass  # the client gave up before the head
            handler.wait_for_client_or_stop(None)
            handler.drop_connection()
            return
        if mode == 'drip':
            # Headers at once, then the body a byte every ``delay`` seconds (0.2 by default):
            # no single read ever waits long enough to time out.
            payload = _fault_page(fault, 'r3c2@drip.example')
            full = json.dumps(payload).encode('utf-8')
            handler.send_response(fault.status or 200)
            handler.send_header('Content-Type', 'application/json')
            handler.send_header('Content-Length', str(len(full)))
            handler.end_headers()
            try:
                for index in range(len(full)):
                    handler.wfile.write(full[index : index + 1])
                    handler.wfile.flush()
                    if handler.stop_event.wait(fault.delay or 0.2):
                        break
            except OSError:
                pass  # the client gave up, as it should
            handler.close_connection = True
            return
        if fault.delay:
            if handler.stop_event.wait(fault.delay):
                handler.drop_connection()
                return
        if mode in ('truncated', 'incomplete'):
            payload = _fault_page(fault, 'r3c2@truncated.example')
            full = json.dumps(payload).encode('utf-8')
            cut = full[: max(1, len(full) // 2)]
            status = fault.status or 200
            if mode == 'truncated':
                # A complete HTTP message whose JSON is cut short: a parse error for the client.
                handler.send_bytes(status, cut, 'application/json', fault.headers, close=True)
            else:
                # Content-Length promises the whole body, then the connection drops mid-way.
                handler.send_response(status)
                handler.send_header('Content-Type', 'application/json')
                handler.send_header('Content-Length', str(len(full)))
                for name, value in fault.headers.items():
                    handler.send_header(name, str(value))
                handler.send_header('Connection', 'close')
                handler.end_headers()
                handler.wfile.write(cut)
                handler.close_connection = True
            return
        if mode == 'raw':
            # ``body`` as bytes, exactly: a compressed payload, a nesting bomb, a redirect.
            headers = dict(fault.headers)
            content_type = headers.pop('Content-Type', 'application/json')
            handler.send_bytes(fault.status or 200, fault.body or b'', content_type, headers)
            return
        if mode == 'html':
            status = fault.status or 502
            title = f'{status} {reason(status)}'
            page = (
                fault.body
                if isinstance(fault.body, str)
                else (
                    f'<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>'
                    f'{title}</h1></center>\r\n</body>\r\n</html>\r\n'
                )
            )
            handler.send_bytes(status, page.encode('utf-8'), 'text/html', fault.headers)
            return
        status = fault.status or 500
        body = fault.body if fault.body is not None else {'message': reason(status)}
        handler.send_json(status, body, fault.headers)

    def _respond(self, method, endpoint, arg, query, api_key, body=b''):
        if endpoint == 'other' or method not in _METHODS.get(endpoint, ('GET', 'HEAD')):
            return 404, {'message': 'Not Found'}, {}
        if not api_key:
            return 401, {'message': 'Unauthorized'}, {}
        if api_key not in self.api_keys:
            return 403, {'message': 'Forbidden'}, {'SpyCloud-Error': 'Invalid API key'}
        refused = self._admit(api_key)
        if refused is not None:
            return refused
        if endpoint.startswith('compass') and api_key in self.compass_denied:
            return 403, {'message': COMPASS_DENIED}, {}
        try:
            if endpoint.startswith('compass'):
                _check_salt(query)
            if endpoint == 'catalog':
                return 200, self._catalogs(arg), {}
            if endpoint == 'watchlist-records':
                return self._watchlist_records(query, api_key)
            if endpoint.startswith('watchlist'):
                return self._watchlist_call(endpoint, arg, api_key, body)
            return 200, self._breach_page(endpoint, arg, query, api_key), {}
        except _BadRequest as exc:
            return 400, exc.body, {}

    # -- the watchlist ---------------------------------------------------------------------

    def publish(self, records):
        """Add raw records to ``breach/data/watchlist``'s answer, as SpyCloud publishing them:
        published now unless they say when, modified now unless they say when, a fresh
        ``document_id`` unless they have one. Returns the records as served."""
        now = _now_stamp()
        added = []
        for raw in records:
            record = {'document_id': str(uuid.uuid4()), 'spycloud_publish_date': now, **raw}
            record.setdefault('record_modification_date', now)
            added.append(record)
        with self._lock:
            self._changed.update((record['document_id'], record) for record in added)
        return [dict(record) for record in added]

    def modify(self, document_id, **fields):
        """Change a tenant's (or a published) record as SpyCloud updating it: ``fields`` set,
        ``record_modification_date`` now unless given. KeyError for an unknown id."""
        with self._lock:
            current = self._changed.get(document_id)
        if current is None:
            current = self._original(document_id)
        record = {**current, 'record_modification_date': _now_stamp(), **fields}
        with self._lock:
            self._changed[document_id] = record
        return dict(record)

    def _original(self, document_id):
        if self.watchlist_records is not None:
            for record in self.watchlist_records:
                if isinstance(record, dict) and record.get('document_id') == document_id:
                    return record
            raise KeyError(document_id)
        return tenant.by_document(datetime.datetime.now(datetime.UTC).date())[document_id]

    def watchlist(self, api_key=data.DEFAULT_API_KEY):
        """identifier → item of one key's watchlist (a copy)."""
        with self._lock:
            return {k: dict(v) for k, v in self._watchlist_of(api_key).items()}

    def reset_watchlists(self):
        with self._lock:
            self._watchlists.clear()

    def _watchlist_of(self, api_key):
        if api_key not in self._watchlists:
            self._watchlists[api_key] = {
                name: dict(data.watchlist_item(name), verified=verified)
                for name, verified in data.SEED_WATCHLIST
            }
        return self._watchlists[api_key]

    def _watchlist_call(self, endpoint, arg, api_key, body):
        """[ASSUME] statuses (spec §5): 404 absent, 409 already there, 400 a bad type."""
        identifier = (arg or '').strip().lower()
        with self._lock:
            items = self._watchlist_of(api_key)
            if endpoint == 'watchlist-create':
                return self._create(items, body)
            item = items.get(identifier)
            if item is None:
                return 404, _not_listed(identifier), {}
            if endpoint == 'watchlist':
                return 200, {'cursor': '', 'hits': 1, 'results': [dict(item)]}, {}
            if endpoint == 'watchlist-delete':
                del items[identifier]
                return 204, None, {}
            if item['identifier_type'] not in ('domain', 'subdomain'):
                raise _BadRequest('identifier', 'Only domains are verified.')
            item['verified'] = 'YES'  # the verification record was found
            return 200, {'identifier_name': identifier, 'verified': 'YES'}, {}

    @staticmethod
    def _create(items, body):
        try:
            request = json.loads(body or b'{}')
        except ValueError:
            raise _BadRequest('body', 'Expected a JSON object.') from None
        identifier = request.get('identifier') if isinstance(request, dict) else None
        kind = request.get('watchlist_type') if isinstance(request, dict) else None
        if not isinstance(identifier, str) or not identifier.strip():
            raise _BadRequest('identifier', 'Required.')
        identifier = identifier.strip().lower()
        if kind not in data.WATCHLIST_TYPES or data.identifier_type(identifier) != kind:
            kinds = ', '.join(data.WATCHLIST_TYPES)
            raise _BadRequest('watchlist_type', f'Must be one of {kinds} and match the identifier.')
        if identifier in items:
            return 409, {'message': 'Identifier already exists'}, {}
        # A domain awaits its DNS proof; a personal e-mail its owner's answer to a verification
        # mail; an address at a verified domain and an IP are searched at once.
        domain = identifier.rpartition('@')[2]
        verified = kind == 'ip' or (
            kind == 'email' and items.get(domain, {}).get('verified') == 'YES'
        )
        items[identifier] = dict(
            data.watchlist_item(identifier), verified='YES' if verified else 'NO'
        )
        return 201, dict(items[identifier]), {}

    def _admit(self, api_key):
        """Token bucket, then monthly quota; None when the request may proceed."""
        now = time.monotonic()
        with self._lock:
            limit = self.rate_limit
            if limit is not None:
                rps, burst = limit
                tokens, stamp, config = self._buckets.get(api_key, (burst, now, limit))
                if config != limit:
                    tokens, stamp = burst, now
                tokens = min(float(burst), tokens + (now - stamp) * rps)
                if tokens < 1:
                    self._buckets[api_key] = (tokens, now, limit)
                    headers = {'x-amzn-ErrorType': 'TooManyRequestsException'}
                    if self.retry_after is not None:
                        headers['Retry-After'] = _header_number(self.retry_after)
                    return 429, {'message': 'Too Many Requests'}, headers
                self._buckets[api_key] = (tokens - 1, now, limit)
            quota = self.monthly_quota
            used = self._quota_used.get(api_key, 0)
            if quota is not None and used >= quota:
                return (
                    429,
                    {'message': 'Limit Exceeded'},
                    {'x-amzn-ErrorType': 'LimitExceededException'},
                )
            self._quota_used[api_key] = used + 1
        return None

    def _catalogs(self, arg):
        ids = []
        for item in arg.split(','):
            item = item.strip()
            if not item.isdigit():
                raise _BadRequest('id', 'Must be an integer or a comma-separated list of integers.')
            if int(item) not in ids:
                ids.append(int(item))
        missing = self.missing_catalogs
        overrides = self.catalog_overrides
        found = [
            {**data.catalog(i), **overrides.get(i, {})} for i in ids if i >= 1 and i not in missing
        ]
        return {'cursor': '', 'hits': len(found), 'results': found}

    def _watchlist_records(self, query, api_key):
        since, until = _date(query, 'since'), _date(query, 'until')
        since_modified, until_modified = _modification_range(query)
        if since_modified is not None or until_modified is not None:
            since, until = since_modified, until_modified  # the window the query spans
        limit = self.watchlist_max_days
        if limit is not None and _first(query, 'cursor') in (None, ''):
            span = ((until or datetime.datetime.now()) - (since or datetime.datetime.min)).days
            if span > limit:
                time.sleep(self.watchlist_timeout_s)
                return 504, {'message': 'Endpoint request timed out'}, {}
        return 200, self._breach_page('watchlist', None, query, api_key), {}

    def _breach_page(self, kind, value, query, api_key):
        token = _first(query, 'cursor')
        now = time.monotonic()
        if token is not None and token.strip():
            with self._lock:
                cursor = self._cursors.get(token.strip())
                ttl = self.cursor_ttl
            if cursor is None or cursor.api_key != api_key or now - cursor.issued > ttl:
                raise _BadRequest('cursor', 'Cursor not found.')
            results, offset = cursor.results, cursor.offset
        else:
            results, offset = _filter(self._candidates(kind, value, query), query), 0
        size = max(1, int(self.page_size))
        page = results[offset : offset + size]
        following = ''
        if offset + size < len(results):
            following = str(uuid.uuid4())
            with self._lock:
                ttl = self.cursor_ttl
                for key in [k for k, c in self._cursors.items() if now - c.issued > ttl]:
                    del self._cursors[key]
                self._cursors[following] = _Cursor(api_key, results, offset + size)
        return {'cursor': following, 'hits': len(results), 'results': page}

    def _candidates(self, kind, value, query):
        if kind == 'compass-device-records':
            return compass.records_of(value)
        if kind == 'compass-devices':
            # Each machine dated by its newest record within since/until: a machine is listed
            # exactly when it has a record in the window, whatever its records outside it.
            today = datetime.datetime.now(datetime.UTC).date()
            window = tenant.select(today, _date(query, 'since'), _date(query, 'until'))
            return compass.summaries(window)
        if kind == 'emails' and ',' in value:
            return self._email_list(value)
        if kind != 'watchlist':
            chosen = self.lookup_records.get((kind, data.normalized(kind, value)))
            return list(chosen) if chosen is not None else _records(kind, value)
        if self.watchlist_records is not None:
            return self._overlaid(list(self.watchlist_records))
        today = datetime.datetime.now(datetime.UTC).date()
        since_modified, until_modified = _modification_range(query)
        if since_modified is not None or until_modified is not None:
            return self._overlaid(tenant.modified(today, since_modified, until_modified))
        return self._overlaid(tenant.select(today, _date(query, 'since'), _date(query, 'until')))

    def _overlaid(self, records):
        """The records with the published and modified ones in place, newest published first."""
        with self._lock:
            changed = dict(self._changed)
        if not changed:
            return records
        kept = [r for r in records if _document_id(r) not in changed]
        merged = kept + list(changed.values())
        merged.sort(key=_publish_stamp, reverse=True)
        return merged

    def _email_list(self, value):
        mode = self.email_lists
        if mode not in EMAIL_LISTS:
            raise ValueError('email_lists must be one of {}'.format(', '.join(EMAIL_LISTS)))
        if mode == 'literal':
            return ()
        if mode == 'refuse':
            raise _BadRequest('email', 'Must be an e-mail address.')
        addresses = list(dict.fromkeys(v.strip().lower() for v in value.split(',')))
        if not all(addresses) or len(addresses) > EMAIL_LIST_MAX:
            raise _BadRequest('email', f'Must be up to {EMAIL_LIST_MAX} e-mail addresses.')
        merged = [record for address in addresses for record in _records('emails', address)]
        merged.sort(key=lambda record: record['spycloud_publish_date'], reverse=True)
        return merged


def _check_salt(query):
    """``salt`` (spec §2.3): 10 to 24 characters when given."""
    salt = _first(query, 'salt')
    if salt is not None and not 10 <= len(salt) <= 24:
        raise _BadRequest('salt', 'Must be 10 to 24 characters.')


def _not_listed(identifier):
    """[ASSUME] SpyCloud's own 404 for an identifier not on the watchlist: its service's error
    shape (as its 400s), unlike the gateway's ``{"message": "Not Found"}`` for an unknown path."""
    return {
        'errorType': 'NotFound',
        'errorMessage': f"[NotFound] Identifier not found: '{identifier}'.",
    }


def _fault_page(fault, value):
    """The body a fault sends: its own, or a page of ``value``'s records."""
    if fault.body is not None:
        return fault.body
    return {'cursor': '', 'hits': 1, 'results': list(_records('emails', value))}


def _document_id(record):
    return record.get('document_id') if isinstance(record, dict) else None


def _publish_stamp(record):
    return str(record.get('spycloud_publish_date', '')) if isinstance(record, dict) else ''


def _now_stamp():
    return datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')


def _header_number(value):
    return str(int(value)) if float(value).is_integer() else str(value)
