"""JSON log lines, Prometheus metrics, and no secret in any log line, over HTTP."""

import json
import logging
import re

import pytest
import requests

from localrelay import gunicorn_relay
from simulator import data
from spycloud_relay.logs import JsonFormatter
from support import email, metric

SECRET_KEY = 'sk-LIVE-7f3a9c2e1b5d'


def request_lines(caplog):
    return [r for r in caplog.records if r.name == 'relay.request']


def test_one_json_line_per_request(relay, caplog):
    caplog.set_level(logging.INFO, logger='relay.request')
    response = relay.post(
        '/observe/observables',
        [email('r12c3@log.example'), {'type': 'domain', 'value': 'r2c1.log.example'}],
        headers={'X-Request-Id': 'trace-42'},
    )
    assert response.headers['X-Request-Id'] == 'trace-42'
    (record,) = request_lines(caplog)
    line = json.loads(JsonFormatter().format(record))
    assert line['request_id'] == 'trace-42'
    assert line['route'] == '/observe/observables' and line['method'] == 'POST'
    assert line['status'] == 200 and line['outcome'] == 'ok'
    assert line['observables'] == {'email': 1, 'domain': 1}
    assert line['spycloud_calls'] == 2 + 2  # a page and a catalog batch each
    assert line['cache_misses'] == 3 + 1 and line['cache_hits'] == 0
    assert line['retries'] == 0 and line['duration_ms'] > 0


def test_log_line_counts_retries_and_cache_hits(relay, spycloud, caplog):
    caplog.set_level(logging.INFO, logger='relay.request')
    relay.observe([email('r4c2@again.example')])
    spycloud.throttle(times=1)
    relay.observe([email('r4c2@again.example')])
    first, second = [json.loads(JsonFormatter().format(r)) for r in request_lines(caplog)]
    assert (first['cache_misses'], first['cache_hits']) == (2, 0)
    assert (second['cache_misses'], second['cache_hits'], second['retries']) == (0, 2, 1)


@pytest.mark.parametrize(
    'path, kwargs, outcome',
    [
        ('/observe/observables', {'token': 'bad'}, 'authorization error'),
        ('/observe/observables', {'data': 'nope'}, 'invalid argument'),
        ('/health', {}, 'ok'),
    ],
)
def test_outcome_is_the_answer(relay, caplog, path, kwargs, outcome):
    caplog.set_level(logging.INFO, logger='relay.request')
    relay.post(path, [email('r1c1@o.example')] if 'data' not in kwargs else None, **kwargs)
    (record,) = request_lines(caplog)
    assert record.outcome == outcome


def test_partial_answers_are_logged_as_partial(relay, caplog):
    caplog.set_level(logging.INFO, logger='relay.request')
    relay.observe([email('r150c2@partial.example')])
    assert request_lines(caplog)[0].outcome == 'partial'


def test_no_secret_reaches_any_log_line_at_debug(make_relay, spycloud, caplog):
    """Every flow, logging at DEBUG: no key, token, password, salt or cookie in any line."""
    spycloud.api_keys.add(SECRET_KEY)
    relay = make_relay(log_level='DEBUG')
    caplog.set_level(logging.DEBUG)
    tokens, values = [], ['r12c4@secret.example', 'r8c3.secret.example']
    try:
        for value in values:
            token = relay.token(key=SECRET_KEY, show_passwords=True)
            tokens.append(token)
            kind = 'email' if '@' in value else 'domain'
            body = relay.observe([{'type': kind, 'value': value}], token=token)
            assert body['data']['sightings']['count'] > 0
        tokens.append(relay.token(key=SECRET_KEY, aud='https://wrong.example'))
        relay.post('/health', token=tokens[-1])
        relay.post('/health', token=relay.token(key=SECRET_KEY))
        spycloud.add_fault(401, body={'message': f'Unauthorized key {SECRET_KEY}'})
        echoed = relay.observe([email('r1c1@echo.example')], token=tokens[0])
        assert SECRET_KEY not in json.dumps(echoed) and '[redacted]' in json.dumps(echoed)
        spycloud.clear_faults()
        spycloud.add_fault(mode='reset', times=1)
        relay.observe([email('r2c1@reset.example')], token=tokens[0])
    finally:
        spycloud.api_keys.discard(SECRET_KEY)
        logging.getLogger().setLevel(logging.INFO)
    lines = [JsonFormatter().format(r) for r in caplog.records]
    assert len(lines) > 10
    secrets = [SECRET_KEY, *tokens]
    for value in values:
        for record in data.records_for('emails' if '@' in value else 'domains', value):
            secrets += [
                str(record[f])
                for f in ('password', 'password_plaintext', 'salt', 'cookie_value')
                if record.get(f)
            ]
    assert len(secrets) > 10
    leaked = [secret for secret in secrets for line in lines if secret in line]
    assert leaked == []
    relay_lines = [json.loads(line) for line in lines if '"relay.request"' in line]
    assert relay_lines and all(
        re.fullmatch(r'[0-9a-f]{16}', line['request_id']) for line in relay_lines
    )


def test_metrics_are_off_by_default(relay):
    assert requests.get(relay.url + '/metrics', timeout=5).status_code == 404


def test_metrics_count_calls_caches_retries_and_latency(make_relay, spycloud):
    relay = make_relay(metrics_enabled=True)
    before = requests.get(relay.url + '/metrics', timeout=5).text
    relay.observe([email('r6c3@metrics.example')])
    spycloud.throttle(times=1)
    relay.observe([email('r6c3@metrics.example')])
    after = requests.get(relay.url + '/metrics', timeout=5)
    assert after.headers['Content-Type'].startswith('text/plain')
    text = after.text

    def delta(name, **labels):
        return metric(text, name, **labels) - metric(before, name, **labels)

    assert delta('relay_spycloud_calls_total', endpoint='breach/data/emails', status='200') == 2
    assert delta('relay_spycloud_calls_total', endpoint='breach/catalog', status='200') == 1
    assert delta('relay_spycloud_retries_total', endpoint='breach/data/emails') == 1
    assert delta('relay_cache_lookups_total', cache='catalog', result='miss') == 3
    assert delta('relay_cache_lookups_total', cache='catalog', result='hit') == 3
    assert delta('relay_cache_lookups_total', cache='jwks', result='hit') >= 1
    assert (
        delta('relay_request_duration_seconds_count', route='/observe/observables', outcome='ok')
        == 2
    )
    assert delta('relay_rate_limiter_wait_seconds_count') == 3


def json_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith('{')]


def test_metrics_add_up_every_gunicorn_worker(jwks, spycloud, tmp_path):
    log_path = tmp_path / 'gunicorn.log'
    with (
        open(log_path, 'w') as output,
        gunicorn_relay(
            spycloud,
            jwks,
            output=output,
            METRICS_ENABLED='true',
            WEB_CONCURRENCY=2,
            LOG_LEVEL='info',
        ) as url,
    ):
        token, ids, workers = jwks.mint(url), [], set()
        while len(workers) < 2 and len(ids) < 60:  # a connection each, until both answered
            response = requests.post(
                url + '/observe/observables',
                timeout=20,
                json=[email(f'r2c1-{len(ids)}@workers.example')],
                headers={'Authorization': f'Bearer {token}', 'Connection': 'close'},
            )
            assert response.json()['data']['sightings']['count'] == 2
            ids.append(response.headers['X-Request-Id'])
            workers = {
                line['pid'] for line in json_lines(log_path) if line['logger'] == 'relay.request'
            }
        text = requests.get(url + '/metrics', timeout=5).text
    assert len(workers) == 2
    assert metric(
        text, 'relay_spycloud_calls_total', endpoint='breach/data/emails', status='200'
    ) == len(ids)
    assert metric(
        text, 'relay_request_duration_seconds_count', route='/observe/observables', outcome='ok'
    ) == len(ids)
    lines = json_lines(log_path)
    access = [line for line in lines if line['logger'] == 'gunicorn.access']
    relay_lines = [line for line in lines if line['logger'] == 'relay.request']
    assert {line['request_id'] for line in access} >= set(ids)
    assert {line['request_id'] for line in relay_lines} >= set(ids)
    assert all(line['status'] == 200 for line in access if line['path'] == '/observe/observables')


def test_start_up_removes_only_prometheus_files_from_the_metrics_dir(jwks, spycloud, tmp_path):
    """An earlier run's counts are cleared; whatever else shares the directory is not."""
    directory = tmp_path / 'metrics'
    (directory / 'keep-me').mkdir(parents=True)
    (directory / 'keep-me' / 'counter_1.db').write_bytes(b'not ours to judge')
    (directory / 'notes.txt').write_text('an operator file')
    (directory / 'counter_1.db.bak').write_bytes(b'a backup')
    stale = ['counter_1.db', 'histogram_1.db', 'gauge_livesum_1.db', 'summary_1.db']
    for name in stale:
        (directory / name).write_bytes(b'stale')
    with gunicorn_relay(
        spycloud, jwks, METRICS_ENABLED='true', PROMETHEUS_MULTIPROC_DIR=directory
    ) as url:
        text = requests.get(url + '/metrics', timeout=5).text
    assert 'relay_request_duration_seconds' in text
    assert (directory / 'notes.txt').read_text() == 'an operator file'
    assert (directory / 'counter_1.db.bak').read_bytes() == b'a backup'
    assert (directory / 'keep-me' / 'counter_1.db').read_bytes() == b'not ours to judge'
    assert not any((directory / name).exists() for name in stale)
