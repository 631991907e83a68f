"""The files in deploy/ agree with the Dockerfile and with the settings the relay reads."""

import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from spycloud_relay.config import VERSION, Settings
from spycloud_relay.sync.settings import SyncSettings

pytestmark = pytest.mark.pure  # no server: `make test-fast` runs it

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / 'Dockerfile').read_text()
IMAGE = f'spycloud-xdr-relay:{VERSION}'
GUNICORN_ENV = {
    'PORT',
    'GUNICORN_BIND',
    'WEB_CONCURRENCY',
    'GUNICORN_WORKER_CONNECTIONS',
    'GUNICORN_TIMEOUT',
    'REQUESTS_CA_BUNDLE',
    'PROMETHEUS_MULTIPROC_DIR',
}
KNOWN_ENV = {f.name.upper() for f in fields(Settings)} | GUNICORN_ENV
SYNC_ENV = {f.metadata['env'] for f in fields(SyncSettings)} | KNOWN_ENV
SYNC_SECRETS = {'SPYCLOUD_API_KEY', 'XDR_CLIENT_ID', 'XDR_CLIENT_PASSWORD'}


def load(path):
    return list(yaml.safe_load_all((ROOT / path).read_text()))


def exposed_port():
    (port,) = re.findall(r'^EXPOSE\s+(\d+)', DOCKERFILE, re.MULTILINE)
    return int(port)


def healthcheck_probe():
    """The HEALTHCHECK instruction, plus the source of any script it runs that is COPY'd in."""
    instruction = re.search(r'^HEALTHCHECK (?:.*\\\n)*.*$', DOCKERFILE, re.MULTILINE).group(0)
    texts = [instruction]
    for source, target in re.findall(r'^COPY (?:--\S+ )*(\S+) (\S+)$', DOCKERFILE, re.MULTILINE):
        if target in instruction:
            texts.append((ROOT / source).read_text())
    return '\n'.join(texts)


def test_dockerfile_runs_as_non_root_with_a_watchdog_healthcheck():
    users = re.findall(r'^USER\s+(\S+)', DOCKERFILE, re.MULTILINE)
    assert users and users[-1].split(':')[0] not in ('root', '0')
    probe = healthcheck_probe()
    assert '/watchdog' in probe and 'Health-Check' in probe


@pytest.mark.parametrize(
    'path', sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'deploy').rglob('*.y*ml'))
)
def test_every_file_is_valid_yaml(path):
    documents = load(path)
    assert documents and all(isinstance(d, dict) for d in documents)


def test_kubernetes_deployment_matches_the_image():
    (deployment,) = load('deploy/kubernetes/deployment.yaml')
    assert deployment['kind'] == 'Deployment'
    spec = deployment['spec']['template']['spec']
    (container,) = spec['containers']
    assert container['image'] == IMAGE
    ports = {p['name']: p['containerPort'] for p in container['ports']}
    assert ports == {'http': exposed_port()}
    for probe in ('readinessProbe', 'livenessProbe'):
        check = container[probe]['httpGet']
        assert check['path'] == '/watchdog' and check['port'] == 'http'
        assert [h['name'] for h in check['httpHeaders']] == ['Health-Check']
    assert spec['securityContext']['runAsNonRoot'] is True
    assert {e['name'] for e in container['env']} <= KNOWN_ENV
    labels = deployment['spec']['template']['metadata']['labels']
    assert deployment['spec']['selector']['matchLabels'] == labels


def test_the_replicas_share_the_redis_the_files_define():
    (deployment,) = load('deploy/kubernetes/deployment.yaml')
    redis_deployment, redis_service = load('deploy/kubernetes/redis.yaml')
    (container,) = deployment['spec']['template']['spec']['containers']
    url = next(e['value'] for e in container['env'] if e['name'] == 'REDIS_URL')
    port = redis_service['spec']['ports'][0]['port']
    assert url == f'redis://{redis_service["metadata"]["name"]}:{port}/0'
    assert (
        redis_service['spec']['selector']
        == redis_deployment['spec']['template']['metadata']['labels']
    )
    assert (
        '--maxmemory-policy'
        in redis_deployment['spec']['template']['spec']['containers'][0]['args']
    )
    (compose,) = load('deploy/compose/docker-compose.yml')
    replicas = [s for name, s in compose['services'].items() if name.startswith('relay')]
    assert len(replicas) == 2
    assert {r['environment']['REDIS_URL'] for r in replicas} == {'redis://127.0.0.1:6379/0'}
    assert sorted(r['environment']['PORT'] for r in replicas) == ['9090', '9091']
    assert '6379' in compose['services']['redis']['command']


def test_service_and_autoscaler_point_at_the_deployment():
    (deployment,) = load('deploy/kubernetes/deployment.yaml')
    (service,) = load('deploy/kubernetes/service.yaml')
    (hpa,) = load('deploy/kubernetes/hpa.yaml')
    labels = deployment['spec']['template']['metadata']['labels']
    assert service['spec']['selector'] == labels
    assert [p['targetPort'] for p in service['spec']['ports']] == ['http']
    target = hpa['spec']['scaleTargetRef']
    assert (target['kind'], target['name']) == ('Deployment', deployment['metadata']['name'])
    assert 1 <= hpa['spec']['minReplicas'] <= hpa['spec']['maxReplicas']


def test_compose_runs_the_relay_image_against_the_simulator():
    (compose,) = load('deploy/compose/docker-compose.yml')
    relay, simulator = compose['services']['relay'], compose['services']['simulator']
    assert relay['image'] == IMAGE
    assert relay['build']['context'] == '../..'
    env = relay['environment']
    assert set(env) <= KNOWN_ENV
    assert int(env['PORT']) == exposed_port()
    spycloud_port = env['SPYCLOUD_API_URL'].split(':')[2].split('/')[0]
    assert ['--spycloud-port', spycloud_port] == simulator['command'][3:5]
    assert env['ALLOWED_JWKS_HOSTS'] == '127.0.0.1:' + simulator['command'][6]
    assert '/watchdog' in ' '.join(relay['healthcheck']['test'])
    sim_dockerfile = (
        ROOT / 'deploy' / 'compose' / simulator['build']['dockerfile'].split('/')[-1]
    ).read_text()
    assert 'COPY code/simulator' in sim_dockerfile


def test_the_sync_cronjob_runs_the_image_once_with_its_secrets_from_a_secret():
    (cronjob,) = load('deploy/kubernetes/sync-cronjob.yaml')
    assert cronjob['kind'] == 'CronJob' and cronjob['spec']['concurrencyPolicy'] == 'Forbid'
    pod = cronjob['spec']['jobTemplate']['spec']['template']['spec']
    (container,) = pod['containers']
    assert container['image'] == IMAGE and container['args'] == ['sync', '--once']
    env = {e['name']: e for e in container['env']}
    assert set(env) <= SYNC_ENV and SYNC_SECRETS <= set(env)
    for name in SYNC_SECRETS:  # never a literal value in the file
        assert 'value' not in env[name] and env[name]['valueFrom']['secretKeyRef']
    (redis_service,) = [d for d in load('deploy/kubernetes/redis.yaml') if d['kind'] == 'Service']
    assert redis_service['metadata']['name'] in env['REDIS_URL']['value']
    assert container['securityContext']['readOnlyRootFilesystem'] is True


def test_the_image_runs_relay_commands_by_name():
    """`docker run IMAGE sync --once` runs `relay sync --once`; the CMD still serves."""
    (entrypoint,) = re.findall(r'^ENTRYPOINT (\[.*\])$', DOCKERFILE, re.MULTILINE)
    (script,) = re.findall(r'^COPY (docker/\S+) /usr/local/bin/relay-entrypoint$', DOCKERFILE, re.M)
    assert entrypoint == '["relay-entrypoint"]'
    text = (ROOT / script).read_text()
    assert 'sync|check|lookup|tiles|watchlist) exec relay "$@"' in text and 'exec "$@"' in text
    assert (ROOT / script).stat().st_mode & 0o111  # executable, as COPY keeps it


def test_compose_syncs_into_the_simulators_xdr():
    (compose,) = load('deploy/compose/docker-compose.yml')
    sync, simulator = compose['services']['sync'], compose['services']['simulator']
    assert sync['image'] == IMAGE and sync['command'][:2] == ['sync', '--every']
    env = sync['environment']
    assert set(env) <= SYNC_ENV
    xdr_port = simulator['command'][simulator['command'].index('--xdr-port') + 1]
    assert env['XDR_API_URL'] == f'http://127.0.0.1:{xdr_port}'
    assert env['REDIS_URL'] == compose['services']['relay']['environment']['REDIS_URL']
