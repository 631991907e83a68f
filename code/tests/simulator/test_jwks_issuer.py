"""JwksIssuer behaves like IROH's key server, so relay auth tests exercise the real fetch path."""

import json
import os
import pathlib
import threading
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from simulator import DEFAULT_API_KEY, JwksIssuer, mint_token_from_state

TIMEOUT = 5
AUD = 'http://127.0.0.1:5000'


@pytest.fixture
def issuer():
    with JwksIssuer() as server:
        yield server


def fetch(issuer, **kwargs):
    kwargs.setdefault('timeout', TIMEOUT)
    return requests.get(issuer.url, verify=issuer.ca_pem_path, **kwargs)


def key_for(jwks, kid):
    for jwk in jwks['keys']:
        if jwk['kid'] == kid:
            return jwt.PyJWK(jwk).key
    return None


def verify(issuer, token, audience=AUD):
    """Verify a token the way a relay does: kid from the header, key from the served JWKS."""
    kid = jwt.get_unverified_header(token)['kid']
    key = key_for(fetch(issuer).json(), kid)
    assert key is not None, f'kid {kid} not served'
    return jwt.decode(token, key, algorithms=['RS256'], audience=audience)


def test_jwks_is_served_over_https_trusted_only_through_the_ca(issuer):
    assert issuer.url == f'https://127.0.0.1:{issuer.port}/.well-known/jwks'
    assert issuer.jwks_host == f'127.0.0.1:{issuer.port}'
    response = fetch(issuer)
    assert response.status_code == 200
    assert response.headers['Content-Type'] == 'application/json'
    (jwk,) = response.json()['keys']
    assert jwk['kid'] == issuer.kid
    assert (jwk['kty'], jwk['alg'], jwk['use']) == ('RSA', 'RS256', 'sig')
    assert jwk['n'] and jwk['e'] == 'AQAB'
    assert set(jwk) == {'kid', 'kty', 'alg', 'use', 'n', 'e'}
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(issuer.url, timeout=TIMEOUT)
    localhost = requests.get(
        f'https://localhost:{issuer.port}/.well-known/jwks',
        verify=issuer.ca_pem_path,
        timeout=TIMEOUT,
    )
    assert localhost.status_code == 200


def test_other_paths_are_404_and_not_counted(issuer):
    response = requests.get(
        f'https://{issuer.jwks_host}/.well-known/jwks.json',
        verify=issuer.ca_pem_path,
        timeout=TIMEOUT,
    )
    assert response.status_code == 404
    assert issuer.requests == 0
    fetch(issuer)
    fetch(issuer)
    assert issuer.requests == 2
    issuer.reset_stats()
    assert issuer.requests == 0


def test_minted_token_verifies_against_the_served_key(issuer):
    token = issuer.mint(AUD)
    header = jwt.get_unverified_header(token)
    assert header['kid'] == issuer.kid and header['alg'] == 'RS256'
    claims = verify(issuer, token)
    assert claims['jwks_host'] == issuer.jwks_host
    assert claims['aud'] == AUD
    assert claims['key'] == DEFAULT_API_KEY
    assert claims['exp'] - claims['iat'] == 600
    assert abs(claims['iat'] - time.time()) < 5
    with pytest.raises(jwt.InvalidAudienceError):
        verify(issuer, token, audience='https://elsewhere')


def test_mint_claim_overrides_and_removals(issuer):
    token = issuer.mint(
        AUD,
        key='custom-key',
        CTR_ENTITIES_LIMIT=5,
        exp=None,
        jwks_host=None,
        headers={'x-extra': '1'},
    )
    claims = jwt.decode(token, options={'verify_signature': False})
    assert claims['key'] == 'custom-key' and claims['CTR_ENTITIES_LIMIT'] == 5
    from_state = jwt.decode(
        mint_token_from_state(issuer.state_dir, AUD, key='k2'), options={'verify_signature': False}
    )
    assert from_state['key'] == 'k2'  # no signing-key parameter to collide with there
    assert 'exp' not in claims and 'jwks_host' not in claims
    assert jwt.get_unverified_header(token)['x-extra'] == '1'
    assert verify(issuer, token)['key'] == 'custom-key'
    # ``key`` is always the relay's API-key claim; signing keys go through ``signing_key``.
    as_claim = jwt.decode(issuer.mint(AUD, key='wrong-key'), options={'verify_signature': False})
    assert as_claim['key'] == 'wrong-key'
    assert 'key' not in jwt.decode(issuer.mint(AUD, key=None), options={'verify_signature': False})
    pem = (
        issuer.private_key()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    assert verify(issuer, issuer.mint(AUD, signing_key=pem))['key'] == DEFAULT_API_KEY
    no_kid = issuer.mint(AUD, kid=None)
    assert 'kid' not in jwt.get_unverified_header(no_kid)
    bare = jwt.decode(issuer.mint(None, key=None), options={'verify_signature': False})
    assert 'aud' not in bare and 'key' not in bare
    expired = issuer.mint(AUD, exp=int(time.time()) - 10)
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(issuer, expired)


def test_mint_forged_signature_and_other_algorithms(issuer):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = issuer.mint(AUD, signing_key=other)
    assert jwt.get_unverified_header(forged)['kid'] == issuer.kid
    with pytest.raises(jwt.InvalidSignatureError):
        verify(issuer, forged)
    hs = issuer.mint(AUD, alg='HS256')
    assert jwt.get_unverified_header(hs)['alg'] == 'HS256'
    shared = issuer.mint(AUD, alg='HS256', signing_key='a-shared-secret-of-at-least-32-bytes!')
    assert (
        jwt.decode(
            shared, 'a-shared-secret-of-at-least-32-bytes!', algorithms=['HS256'], audience=AUD
        )['key']
        == DEFAULT_API_KEY
    )
    with pytest.raises(jwt.InvalidAlgorithmError):
        verify(issuer, hs)
    unknown_kid = issuer.mint(AUD, kid='not-served')
    assert key_for(fetch(issuer).json(), 'not-served') is None
    assert jwt.get_unverified_header(unknown_kid)['kid'] == 'not-served'


def test_rotate_serves_only_the_new_key(issuer):
    old_kid, old_token = issuer.kid, issuer.mint(AUD)
    new_kid = issuer.rotate()
    assert new_kid == issuer.kid != old_kid
    jwks = fetch(issuer).json()
    assert [k['kid'] for k in jwks['keys']] == [new_kid]
    assert key_for(jwks, old_kid) is None
    assert jwt.get_unverified_header(old_token)['kid'] == old_kid
    assert verify(issuer, issuer.mint(AUD))['aud'] == AUD


def test_add_key_serves_both_and_can_sign_with_either(issuer):
    current = issuer.kid
    extra = issuer.add_key()
    assert extra != current and issuer.kid == current
    assert {k['kid'] for k in fetch(issuer).json()['keys']} == {current, extra}
    assert verify(issuer, issuer.mint(AUD, kid=extra))['aud'] == AUD
    assert verify(issuer, issuer.mint(AUD))['aud'] == AUD
    assert key_for(fetch(issuer).json(), extra) is not None


def test_mode_garbage(issuer):
    issuer.mode = 'garbage'
    response = fetch(issuer)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_mode_huge_streams_20_mb_and_survives_an_early_hang_up(issuer):
    issuer.mode = 'huge'
    with fetch(issuer, stream=True) as response:
        assert response.status_code == 200
        assert int(response.headers['Content-Length']) >= 20 * 1024 * 1024
        first = next(response.iter_content(65536))
        assert first.startswith(b'{"keys": [')
    # A full read is valid JSON with the real keys in it.
    body = fetch(issuer).content
    assert len(body) >= 20 * 1024 * 1024
    assert json.loads(body)['keys'][0]['kid'] == issuer.kid
    issuer.mode = 'ok'
    assert fetch(issuer).status_code == 200


def test_mode_redirect_points_off_host(issuer):
    issuer.mode = 'redirect'
    response = fetch(issuer, allow_redirects=False)  # never follow: evil.invalid is not ours
    assert response.status_code == 302
    assert response.headers['Location'] == 'https://evil.invalid/.well-known/jwks'


def test_mode_hang_never_answers_and_stop_still_returns(issuer):
    issuer.mode = 'hang'
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        fetch(issuer, timeout=0.3)
    assert time.monotonic() - started < 2
    assert issuer.requests == 1


def test_stop_is_prompt_with_a_hung_client():
    server = JwksIssuer().start()
    server.mode = 'hang'
    errors = []

    def call():
        try:
            fetch(server, timeout=TIMEOUT)
        except requests.RequestException as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    thread.join(TIMEOUT)
    assert errors and not thread.is_alive()


def test_mode_status(issuer):
    issuer.mode = 'status'
    assert fetch(issuer).status_code == 500
    issuer.status_code = 503
    response = fetch(issuer)
    assert response.status_code == 503 and response.json() == {'message': 'Service Unavailable'}


def test_private_state_dir_is_removed_on_stop():
    server = JwksIssuer().start()
    state_dir = server.state_dir
    assert os.path.exists(server.ca_pem_path)
    token = mint_token_from_state(state_dir, AUD)  # works while running
    assert verify(server, token)['jwks_host'] == server.jwks_host
    server.stop()
    assert not os.path.exists(state_dir)


def test_state_dir_persists_keys_and_certificates(tmp_path):
    with JwksIssuer(state_dir=str(tmp_path)) as first:
        kid, port = first.kid, first.port
        ca = pathlib.Path(first.ca_pem_path).read_bytes()
        token = mint_token_from_state(str(tmp_path), AUD, CTR_ENTITIES_LIMIT=3)
        claims = verify(first, token)
        assert claims['jwks_host'] == first.jwks_host and claims['CTR_ENTITIES_LIMIT'] == 3
        assert jwt.get_unverified_header(token)['kid'] == kid
    assert os.path.exists(first.ca_pem_path)  # a caller-owned state_dir is kept
    with JwksIssuer(state_dir=str(tmp_path)) as second:
        assert second.kid == kid
        assert pathlib.Path(second.ca_pem_path).read_bytes() == ca
        assert second.port == port  # reused when free, so old tokens still name a live host
        assert verify(second, token)['aud'] == AUD
        new_kid = second.rotate()
        rotated = mint_token_from_state(str(tmp_path), AUD)
        assert jwt.get_unverified_header(rotated)['kid'] == new_kid
        assert verify(second, rotated)['jwks_host'] == second.jwks_host
        state = json.loads((tmp_path / 'state.json').read_text())
        assert state['kid'] == new_kid and state['jwks_host'] == second.jwks_host


def test_state_dir_falls_back_to_a_free_port_when_the_saved_one_is_busy(tmp_path):
    with JwksIssuer(state_dir=str(tmp_path)) as first:
        with JwksIssuer(state_dir=str(tmp_path)) as second:
            assert second.port != first.port and second.kid == first.kid
            token = mint_token_from_state(str(tmp_path), AUD)
            assert json.loads((tmp_path / 'state.json').read_text())['port'] == second.port
            assert verify(second, token)['jwks_host'] == second.jwks_host
