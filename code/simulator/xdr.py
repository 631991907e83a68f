"""A local Cisco XDR (IROH) for the sync: the client-credentials token and the bundle import.

The sync's XDR client (token reuse and renewal, 401, 429, retries, per-entity results) is the
thing under test, so this is a socket server like simulator/spycloud.py. The import follows
CTIA's bundle import: one result per entity (created, exists or error), de-duplication by the
external ids under a listed prefix (the stored entity left unchanged, the bundle's transient id
mapped onto it so relationships attach to it), entities without such an id created every time,
each entity validated on its own (simulator/ctim_check.py), a bundle over the entity limit
refused whole with a 400. As CTIA does, an entity is looked up in the store as it was before
its bundle: two entities of one bundle with one external id are both created.
"""

import base64
import binascii
import copy
import json
import secrets
import threading
import time
import uuid
from urllib.parse import parse_qs

from . import ctim_check
from ._http import BackgroundServer, BaseHandler, Served
from .spycloud import Fault, SpyCloudSimulator

__all__ = ['XdrSimulator', 'DEFAULT_XDR_CLIENT', 'TOKEN_PATH', 'IMPORT_PATH']

DEFAULT_XDR_CLIENT = ('simulated-client-id', 'simulated-client-password')
TOKEN_PATH = '/iroh/oauth2/token'
IMPORT_PATH = '/iroh/private-intel/bundle/import'
DEFAULT_PREFIXES = ('ctia-',)  # CTIA's own default when the query names none
MAX_BODY = 256 * 1024 * 1024
# What a bundle may hold beside its lists of entities.
BUNDLE_FIELDS = frozenset(
    {'type', 'source', 'source_uri', 'id', 'schema_version', 'external_ids', 'tlp', 'title'}
    | {'description', 'short_description', 'valid_time', 'timestamp', 'revision', 'language'}
)
_apply_fault = SpyCloudSimulator._apply_fault  # one player of faults for both simulators


class _Refused(Exception):
    """A whole request refused: its status and body."""

    def __init__(self, status, body):
        super().__init__(status)
        self.status, self.body = status, body


class _Handler(BaseHandler):
    def do_POST(self):
        self.body = self.read_body(cap=MAX_BODY)
        self.server.owner._serve(self)

    def do_GET(self):
        self.body = b''
        self.server.owner._serve(self)

    do_PUT = do_DELETE = do_PATCH = do_POST


class XdrSimulator(Served):
    """IROH's token and bundle import on 127.0.0.1; the attributes below may change any time.

    ``clients`` (client id → password), ``token_ttl`` (s, the tokens' ``expires_in``),
    ``entity_limit`` (entities a bundle may hold). ``request_log`` lists every exchange,
    ``entities(type)`` what the store holds, ``expire_tokens()`` ends every token issued.
    """

    def __init__(
        self,
        host='127.0.0.1',
        port=0,
        clients=(DEFAULT_XDR_CLIENT,),
        token_ttl=600.0,
        entity_limit=2000,
    ):
        self.host = host
        self._defaults = dict(clients=dict(clients), token_ttl=token_ttl, entity_limit=entity_limit)
        self._lock = threading.Lock()
        self._server = BackgroundServer(host, port, _Handler, self)
        self.reset()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self):
        return f'http://{self.host}:{self.port}'

    def reset(self):
        """Knobs as started, no fault, no token, an empty store and an empty log."""
        with self._lock:
            self.clients = dict(self._defaults['clients'])
            self.token_ttl = self._defaults['token_ttl']
            self.entity_limit = self._defaults['entity_limit']
            self._faults = []
            self._tokens = {}
            self._store = {}
            self._log = []

    # -- faults ----------------------------------------------------------------------------

    def add_fault(self, status=None, *, match=None, times=None, headers=None, body=None, **kw):
        """Queue a misbehaviour (as SpyCloudSimulator.add_fault: ``mode``, ``delay``, ``hold``),
        tried before authentication; ``match`` is a regex on the path (``bundle/import``);
        ``after``: that many matching requests are let through first (a sync's 2nd import)."""
        fault = Fault(
            kw.get('mode', 'status'),
            status,
            match,
            times,
            headers,
            body,
            kw.get('delay', 0.0),
            kw.get('hold'),
        )
        fault.after = kw.get('after', 0)
        with self._lock:
            self._faults.append(fault)
        return fault

    def throttle(self, times=1, *, retry_after=1, match=None):
        """IROH's 429 over the organisation's hourly budget, with its Retry-After."""
        headers = {'Retry-After': str(retry_after), 'X-Ratelimit-Org-Limit': '8000'}
        body = {'error': 'too_many_requests', 'error_description': 'Rate limit exceeded'}
        return self.add_fault(429, match=match, times=times, headers=headers, body=body)

    def clear_faults(self):
        with self._lock:
            self._faults.clear()

    def _take_fault(self, path):
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or not fault.matches(path):
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.hits += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
                fault.taken.set()
                return fault
        return None

    # -- what tests read -------------------------------------------------------------------

    @property
    def request_log(self):
        """The exchanges so far, in arrival order: method, path, endpoint ('token', 'import'
        or 'other'), query, client_id, token, entities, status, fault, time (monotonic)."""
        with self._lock:
            return [dict(entry) for entry in self._log]

    def count(self, endpoint):
        """Requests seen at ``endpoint`` ('token', 'import' or 'other')."""
        return sum(1 for entry in self.request_log if entry['endpoint'] == endpoint)

    def entities(self, kind):
        """Copies of the stored entities of a CTIM type ('incident' or 'incidents'), oldest
        first."""
        kind = ctim_check.ENTITY_KEYS.get(kind, kind)
        with self._lock:
            return [copy.deepcopy(e) for e in self._store.values() if e['type'] == kind]

    def expire_tokens(self):
        """Every token issued so far is past its TTL: its next call answers 401."""
        with self._lock:
            for token in self._tokens:
                self._tokens[token] = (self._tokens[token][0], float('-inf'))

    # -- serving ---------------------------------------------------------------------------

    def _serve(self, handler):
        path, _, raw_query = handler.path.partition('?')
        entry = {
            'method': handler.command,
            'path': path,
            'endpoint': _endpoint(handler.command, path),
            'query': parse_qs(raw_query, keep_blank_values=True),
            'client_id': None,
            'token': None,
            'entities': None,
            'status': None,
            'fault': None,
            'time': time.monotonic(),
        }
        with self._lock:
            self._log.append(entry)
        fault = self._take_fault(handler.path)
        if fault is not None:
            entry['fault'], entry['status'] = fault.mode, fault.status
            _apply_fault(handler, fault)
            return
        try:
            status, body = self._respond(entry, handler)
        except _Refused as refused:
            status, body = refused.status, refused.body
        entry['status'] = status
        handler.send_json(status, body)

    def _respond(self, entry, handler):
        if entry['endpoint'] == 'token':
            return self._issue_token(entry, handler)
        if entry['endpoint'] == 'import':
            self._authorize(entry, handler.headers.get('Authorization', ''))
            return self._import(entry, handler.body)
        return 404, {'error': 'not_found'}

    # -- token -----------------------------------------------------------------------------

    def _issue_token(self, entry, handler):
        client_id = self._client(handler.headers.get('Authorization', ''))
        entry['client_id'] = client_id
        form = parse_qs(handler.body.decode('utf-8', 'replace'))
        if form.get('grant_type') != ['client_credentials']:
            raise _Refused(400, {'error': 'unsupported_grant_type'})
        token = secrets.token_urlsafe(32)
        with self._lock:
            ttl = self.token_ttl
            self._tokens[token] = (client_id, time.monotonic() + ttl)
        return 200, {
            'access_token': token,
            'token_type': 'bearer',
            'expires_in': int(ttl) if float(ttl).is_integer() else ttl,
            'scope': 'private-intel',
        }

    def _client(self, header):
        """The client id of a valid HTTP Basic header, else a 401."""
        scheme, _, encoded = header.partition(' ')
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode('utf-8')
        except (binascii.Error, UnicodeDecodeError):
            decoded = ''
        client_id, _, password = decoded.partition(':')
        with self._lock:
            known = self.clients.get(client_id)
        if scheme.lower() != 'basic' or known is None or known != password:
            raise _Refused(401, {'error': 'invalid_client'})
        return client_id

    def _authorize(self, entry, header):
        scheme, _, token = header.partition(' ')
        token = token.strip()
        with self._lock:
            client_id, expires = self._tokens.get(token, (None, 0.0))
        entry['token'] = token or None
        if scheme.lower() != 'bearer' or client_id is None or time.monotonic() >= expires:
            raise _Refused(401, {'error': 'invalid_token', 'error_description': 'Unauthorized'})
        entry['client_id'] = client_id

    # -- import ----------------------------------------------------------------------------

    def _import(self, entry, body):
        prefixes = _prefixes(entry['query'])
        bundle = _bundle(body)
        lists = [(key, bundle.get(key, [])) for key in ctim_check.ENTITY_KEYS]
        total = sum(len(items) for _, items in lists)
        entry['entities'] = total
        with self._lock:
            limit = self.entity_limit
        if total > limit:
            raise _Refused(400, {'error': f'Bundle max nb of entities exceeded: {total} > {limit}'})
        with self._lock:
            return 200, {'results': self._import_entities(lists, prefixes)}

    def _import_entities(self, lists, prefixes):
        """Results in the bundle's order; relationships last, once their ends are known."""
        known = {external: e['id'] for e in self._store.values() for external in _keys(e)}
        known_ids = set(self._store)
        mapping, results, created = {}, [], []
        ordered = [pair for pair in lists if pair[0] != 'relationships']
        ordered += [pair for pair in lists if pair[0] == 'relationships']
        for key, items in ordered:
            kind = ctim_check.ENTITY_KEYS[key]
            for item in items:
                result = self._one(item, kind, prefixes, known, known_ids, mapping)
                results.append(result)
                if result['result'] == 'created':
                    created.append(_stored(item, result['id'], mapping))
        for entity in created:
            self._store[entity['id']] = entity
        return results

    def _one(self, item, kind, prefixes, known, known_ids, mapping):
        original = item.get('id') if isinstance(item, dict) else None
        result = {'type': kind, 'original_id': original}
        found = ctim_check.problem(item, kind)
        if found is None and kind == 'relationship':
            found = _unresolved(item, mapping, known_ids)
        external_ids = item.get('external_ids', []) if isinstance(item, dict) else []
        if found is not None:
            return {
                **result,
                'result': 'error',
                'error': 'invalid',
                'msg': found,
                'external_ids': external_ids,
            }
        keys = [i for i in external_ids if i.startswith(prefixes)]
        match = next((known[(kind, k)] for k in keys if (kind, k) in known), None)
        if match is not None:
            outcome = 'exists'
        else:
            outcome, match = 'created', f'{self.url}/ctia/{kind}/{kind}-{uuid.uuid4()}'
        if original is not None:
            mapping[original] = match
        return {**result, 'id': match, 'result': outcome, 'external_ids': external_ids}


def _endpoint(method, path):
    if method == 'POST' and path == TOKEN_PATH:
        return 'token'
    if method == 'POST' and path == IMPORT_PATH:
        return 'import'
    return 'other'


def _prefixes(query):
    raw = ','.join(query.get('external-key-prefixes', []))
    listed = tuple(p.strip() for p in raw.split(',') if p.strip())
    return listed or DEFAULT_PREFIXES


def _bundle(body):
    try:
        bundle = json.loads(body or b'null')
    except (ValueError, RecursionError):
        raise _Refused(400, {'error': 'the body is not JSON'}) from None
    if not isinstance(bundle, dict) or bundle.get('type', 'bundle') != 'bundle':
        raise _Refused(400, {'error': 'the body must be a bundle object'})
    unknown = sorted(set(bundle) - BUNDLE_FIELDS - set(ctim_check.ENTITY_KEYS))
    if unknown:
        raise _Refused(400, {'error': f'unknown bundle key {unknown[0]!r}'})
    for key in ctim_check.ENTITY_KEYS:
        if not isinstance(bundle.get(key, []), list):
            raise _Refused(400, {'error': f'{key} must be a list'})
    return bundle


def _keys(entity):
    """(type, external id) pairs a stored entity is found by."""
    return [(entity['type'], external) for external in entity.get('external_ids', [])]


def _unresolved(relationship, mapping, known_ids):
    for end in ('source_ref', 'target_ref'):
        ref = relationship[end]
        if not (isinstance(ref, str) and (ref in mapping or ref in known_ids)):
            return f'{end} {ref!r} resolves to no entity'
    return None


def _stored(item, new_id, mapping):
    """The entity as the store keeps it: its new id, its relationship ends mapped."""
    entity = copy.deepcopy(item)
    entity['id'] = new_id
    for end in ('source_ref', 'target_ref'):
        if end in entity:
            entity[end] = mapping.get(entity[end], entity[end])
    return entity
