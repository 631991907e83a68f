"""A local stand-in for Cisco IROH's JWKS endpoint plus a matching token minter.

The relay verifies every request's JWT against ``https://<jwks_host>/.well-known/jwks``
(the relay API spec, §3, kept outside this repository). Serving that over real TLS from a
private CA lets
tests exercise the relay's actual fetch path, including certificate checks, key rotation and a
misbehaving key server, without touching the network.
"""

import json
import os
import secrets
import shutil
import tempfile
import threading
import time

import jwt
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from ._http import BackgroundServer, BaseHandler, reason, tls_server_context
from .data import DEFAULT_API_KEY

__all__ = ['JwksIssuer', 'mint_token_from_state', 'JWKS_PATH', 'ISSUER_MODES']

JWKS_PATH = '/.well-known/jwks'
ISSUER_MODES = ('ok', 'garbage', 'huge', 'redirect', 'hang', 'status')
REDIRECT_TARGET = 'https://evil.invalid/.well-known/jwks'
HUGE_BYTES = 20 * 1024 * 1024
HS_DEFAULT_SECRET = 'simulator-hs256-shared-secret-0123456789abcdef'
TOKEN_LIFETIME = 600

_CA_CERT, _CA_KEY = 'ca.pem', 'ca-key.pem'
_SERVER_CERT, _SERVER_KEY = 'server.pem', 'server-key.pem'
_SIGNING_KEY, _STATE = 'signing-key.pem', 'state.json'
_CURRENT = object()


def _new_rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _new_kid():
    return secrets.token_hex(10)


def _pem(private_key):
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path, content, mode=0o600):
    """Atomic write so a concurrent ``mint_token_from_state`` never reads half a key."""
    tmp = f'{path}.tmp-{os.getpid()}-{threading.get_ident()}'
    with open(tmp, 'wb') as handle:
        handle.write(content if isinstance(content, bytes) else content.encode('utf-8'))
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _mint(jwks_host, signing_key, kid, aud, alg, headers, claims):
    now = int(time.time())
    payload = {
        'jwks_host': jwks_host,
        'aud': aud,
        'iat': now,
        'exp': now + TOKEN_LIFETIME,
        'key': DEFAULT_API_KEY,
    }
    payload.update(claims)
    payload = {name: value for name, value in payload.items() if value is not None}
    header = dict(headers or {})
    if kid is not None:
        header.setdefault('kid', kid)
    if alg.startswith('HS') and signing_key is None:
        signing_key = HS_DEFAULT_SECRET
    if alg == 'none':
        signing_key = None
    return jwt.encode(payload, signing_key, algorithm=alg, headers=header)


def mint_token_from_state(state_dir, aud, **claims):
    """Mint a token signed by the key a ``JwksIssuer(state_dir=...)`` saved (any process)."""
    with open(os.path.join(state_dir, _STATE), encoding='utf-8') as handle:
        state = json.load(handle)
    with open(os.path.join(state_dir, _SIGNING_KEY), 'rb') as handle:
        key = serialization.load_pem_private_key(handle.read(), password=None)
    return _mint(state['jwks_host'], key, state['kid'], aud, 'RS256', None, claims)


class _Handler(BaseHandler):
    def do_GET(self):
        self.server.owner._serve(self)

    def do_POST(self):
        self.discard_body()
        self.send_json(404, {'message': 'Not Found'})


class JwksIssuer:
    """HTTPS JWKS server on 127.0.0.1 with a private CA, and the signer for its tokens.

    ``mode`` (one of ``ISSUER_MODES``) and ``status_code`` may be changed at any time.
    """

    def __init__(self, host='127.0.0.1', port=0, state_dir=None):
        self.host = host
        self.mode = 'ok'
        self.status_code = 500
        self._lock = threading.Lock()
        self._requests = 0
        self._persistent = state_dir is not None
        if state_dir is None:
            self._dir = tempfile.mkdtemp(prefix='jwks-issuer-')
        else:
            self._dir = os.path.abspath(state_dir)
            os.makedirs(self._dir, exist_ok=True)
        saved_port = self._load_or_create()
        if port == 0 and saved_port:
            port = saved_port  # keep the jwks_host of earlier tokens valid when possible
        ctx = tls_server_context(*self.server_cert_paths)
        self._server = BackgroundServer(host, port, _Handler, self, ctx)

    # -- key material ----------------------------------------------------------------------

    def _path(self, name):
        return os.path.join(self._dir, name)

    def _load_or_create(self):
        names = (_CA_CERT, _CA_KEY, _SERVER_CERT, _SERVER_KEY, _SIGNING_KEY, _STATE)
        if self._persistent and all(os.path.exists(self._path(n)) for n in names):
            with open(self._path(_STATE), encoding='utf-8') as handle:
                state = json.load(handle)
            with open(self._path(_SIGNING_KEY), 'rb') as handle:
                key = serialization.load_pem_private_key(handle.read(), password=None)
            self._kid = state['kid']
            self._keys = {self._kid: key}
            return state.get('port') or 0
        ca = trustme.CA(organization_name='Relay test CA')
        leaf = ca.issue_cert('127.0.0.1', 'localhost')
        _write(self._path(_CA_CERT), ca.cert_pem.bytes(), 0o644)
        _write(self._path(_CA_KEY), ca.private_key_pem.bytes())
        _write(self._path(_SERVER_CERT), b''.join(p.bytes() for p in leaf.cert_chain_pems), 0o644)
        _write(self._path(_SERVER_KEY), leaf.private_key_pem.bytes())
        self._kid = _new_kid()
        self._keys = {self._kid: _new_rsa_key()}
        self._save_signing_key()
        return 0

    def _save_signing_key(self):
        _write(self._path(_SIGNING_KEY), _pem(self._keys[self._kid]))
        self._save_state()

    def _save_state(self):
        state = {
            'kid': self._kid,
            'host': self.host,
            'port': self.port,
            'jwks_host': self.jwks_host,
            'ca_pem_path': self.ca_pem_path,
        }
        _write(self._path(_STATE), json.dumps(state, indent=2), 0o644)

    def rotate(self):
        """Replace the signing key; the JWKS then serves only the new one."""
        key, kid = _new_rsa_key(), _new_kid()
        with self._lock:
            self._keys = {kid: key}
            self._kid = kid
            self._save_signing_key()
        return kid

    def add_key(self):
        """Serve one more key (the signing key is unchanged); returns its kid."""
        key, kid = _new_rsa_key(), _new_kid()
        with self._lock:
            self._keys = dict(self._keys, **{kid: key})
        return kid

    def private_key(self, kid=None):
        """The private key for ``kid`` (default: the current signing key)."""
        return self._keys[kid or self._kid]

    def jwks(self):
        """The JWKS document the ``ok`` mode serves."""
        keys = []
        for kid, key in list(self._keys.items()):
            jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            jwk.pop('key_ops', None)  # RFC 7517 §4.3: not alongside "use"; IROH sends "use"
            jwk.update(kid=kid, alg='RS256', use='sig')
            keys.append(jwk)
        return {'keys': keys}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self):
        try:
            self._server.start()
        except OSError:
            if self._server.requested_port == 0:
                raise
            self._server.requested_port = 0  # the saved port is taken: any port will do
            self._server.start()
        self._save_state()
        return self

    def stop(self):
        self._server.stop()
        if not self._persistent:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- properties ------------------------------------------------------------------------

    @property
    def port(self):
        server = getattr(self, '_server', None)
        return server.port if server is not None else 0

    @property
    def jwks_host(self):
        return f'{self.host}:{self.port}'

    @property
    def url(self):
        return f'https://{self.jwks_host}{JWKS_PATH}'

    @property
    def kid(self):
        return self._kid

    @property
    def state_dir(self):
        return self._dir

    @property
    def ca_pem_path(self):
        return self._path(_CA_CERT)

    @property
    def server_cert_paths(self):
        """(certfile, keyfile) of the CA-issued 127.0.0.1/localhost certificate."""
        return self._path(_SERVER_CERT), self._path(_SERVER_KEY)

    @property
    def requests(self):
        with self._lock:
            return self._requests

    def reset_stats(self):
        with self._lock:
            self._requests = 0

    # -- tokens ----------------------------------------------------------------------------

    def mint(self, aud, *, kid=_CURRENT, alg='RS256', signing_key=None, headers=None, **claims):
        """A token as IROH would send it; a claim passed as None is left out.

        ``key`` is the relay's API-key claim like any other; ``signing_key`` (a private key
        object, a PEM, or an HS* secret) signs with something other than the served key.
        """
        current = self._kid
        if kid is _CURRENT:
            kid = current
        if signing_key is None and not alg.startswith('HS') and alg != 'none':
            signing_key = self._keys.get(kid) or self._keys[current]
        return _mint(self.jwks_host, signing_key, kid, aud, alg, headers, claims)

    # -- serving ---------------------------------------------------------------------------

    def _serve(self, handler):
        if handler.path.partition('?')[0] != JWKS_PATH:
            handler.send_json(404, {'message': 'Not Found'})
            return
        with self._lock:
            self._requests += 1
        mode = self.mode
        if mode == 'ok':
            handler.send_json(200, self.jwks(), {'Cache-Control': 'max-age=300'})
        elif mode == 'garbage':
            handler.send_bytes(200, b'<<this is not JSON>> {"keys": [', 'application/json')
        elif mode == 'huge':
            self._send_huge(handler)
        elif mode == 'redirect':
            handler.send_bytes(302, b'', 'text/plain', {'Location': REDIRECT_TARGET})
        elif mode == 'hang':
            handler.wait_for_client_or_stop(None)
            handler.drop_connection()
        elif mode == 'status':
            status = int(self.status_code)
            handler.send_json(status, {'message': reason(status)})
        else:
            handler.send_json(500, {'message': f'unknown issuer mode {mode!r}'})

    def _send_huge(self, handler):
        head = json.dumps(self.jwks())[:-1].encode('utf-8') + b', "padding": "'
        tail = b'"}'
        pad = HUGE_BYTES - len(head) - len(tail)
        handler.send_response(200)
        handler.send_header('Content-Type', 'application/json')
        handler.send_header('Content-Length', str(HUGE_BYTES))
        handler.end_headers()
        chunk = b'A' * 65536
        try:
            handler.wfile.write(head)
            while pad > 0 and not handler.stop_event.is_set():
                piece = chunk[: min(pad, len(chunk))]
                handler.wfile.write(piece)
                pad -= len(piece)
            if pad == 0:
                handler.wfile.write(tail)
                return
        except OSError:
            pass  # the client gave up, which is what a careful client should do
        handler.drop_connection()
