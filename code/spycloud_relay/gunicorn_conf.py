"""gunicorn settings (``--config python:spycloud_relay.gunicorn_conf``) for
``gunicorn 'spycloud_relay.app:create_app()'``: the Docker image and ``make demo``.

gevent workers (serving.RelayWorker): a lookup spends its time waiting on SpyCloud, and a
client may send its request slowly or keep its connection idle; each costs a greenlet, so
neither takes the capacity other requests need. A request head that is not complete within
``keepalive`` seconds is dropped. The worker timeout stays above LOOKUP_DEADLINE_S so the
relay answers with partial results before gunicorn would kill it. A header line may be 20 KiB,
so a token up to the relay's own limit (16 KiB) reaches it and is judged there; what gunicorn
refuses is answered in the relay's envelope. Logs, access log included, are JSON lines on
standard output. The settings are read here first, so a bad one stops the master with one
line naming it (exit 3), before any worker starts.
"""

import os
import re
import sys
import tempfile
from typing import TYPE_CHECKING, NoReturn

from spycloud_relay.config import ConfigError, Settings, parse_int

if TYPE_CHECKING:  # gunicorn reads this module's names; these are the hooks' argument types
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker


def _refuse(error: object) -> NoReturn:
    print(f'relay: bad configuration: {error}', file=sys.stderr, flush=True)
    raise SystemExit(3) from None


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as error:
        _refuse(error)


def _integer(name: str, default: int) -> int:
    """gunicorn's own numbers, read as the settings are (config.parse_int)."""
    raw = os.environ.get(name, '')
    value = parse_int(raw) if raw.strip() else default
    if value is None:
        _refuse(f'{name} must be an integer, got {raw!r}')
    return value


_SETTINGS = _settings()

bind = os.environ.get('GUNICORN_BIND', f'0.0.0.0:{os.environ.get("PORT", "9090")}')
workers = _integer('WEB_CONCURRENCY', 2)
worker_class = 'spycloud_relay.serving.RelayWorker'
worker_connections = _integer('GUNICORN_WORKER_CONNECTIONS', 1000)
timeout = _integer('GUNICORN_TIMEOUT', 60)
graceful_timeout = 20
keepalive = 5
# Each worker listens on a socket of its own (SO_REUSEPORT), so the kernel spreads new
# connections over the workers; on one shared socket, keep-alive clients pile onto whichever
# worker accepted first (measured: 74 % of a mix's answers on one of two workers).
reuse_port = True
# No control socket (gunicorn 25+ creates one in $HOME for `gunicornc`): the image's home is
# not writable (an ERROR line at every start) and nothing here manages gunicorn through it.
control_socket_disable = True
# "Authorization: Bearer " and a token of MAX_TOKEN_BYTES (16 KiB) fit in a header line; fewer
# header lines than gunicorn's 100 keep a request head under about 1 MiB (fields × line size).
limit_request_field_size = 20 * 1024
limit_request_fields = 50
# Forwarded headers are the app's to judge (TRUSTED_PROXIES, werkzeug's ProxyFix): gunicorn
# itself believes none, not even from loopback (its default), so no client sets the scheme
# (X-Forwarded-Proto) or SCRIPT_NAME the token's audience is checked against.
forwarded_allow_ips = ''
secure_scheme_headers: dict[str, str] = {}
forwarder_headers = ''
accesslog = '-'
errorlog = '-'
loglevel = os.environ.get('LOG_LEVEL', 'info').lower()
logger_class = 'spycloud_relay.logs.JsonAccessLogger'

# Metrics from every worker, added up at /metrics: prometheus-client keeps them in files here.
_METRICS = _SETTINGS.metrics_enabled
if _METRICS and not os.environ.get('PROMETHEUS_MULTIPROC_DIR'):
    os.environ['PROMETHEUS_MULTIPROC_DIR'] = tempfile.mkdtemp(prefix='relay-metrics-')
# The files prometheus-client writes there: <type>_<pid>.db (gauges: gauge_<mode>_<pid>.db).
_PROMETHEUS_FILE = re.compile(r'(counter|histogram|summary|gauge_[a-z]+)_[0-9]+\.db')


def on_starting(server: 'Arbiter') -> None:
    """Counts from an earlier run of the same directory would be added to this one's; only
    prometheus-client's own files go, whatever else the directory holds stays."""
    directory = os.environ.get('PROMETHEUS_MULTIPROC_DIR')
    if _METRICS and directory and os.path.isdir(directory):
        with os.scandir(directory) as entries:
            for entry in entries:
                if _PROMETHEUS_FILE.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    os.remove(entry.path)


def child_exit(server: 'Arbiter', worker: 'Worker') -> None:
    if _METRICS and os.environ.get('PROMETHEUS_MULTIPROC_DIR'):
        from prometheus_client import multiprocess

        # prometheus-client leaves it unannotated; unused-ignore until the check is strict.
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call, unused-ignore]
