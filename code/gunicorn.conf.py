"""gunicorn settings for ``gunicorn 'app:create_app()'`` (the Docker image and ``make demo``).

gevent workers (serving.RelayWorker): a lookup spends its time waiting on SpyCloud, and a
client may send its request slowly or keep its connection idle; each costs a greenlet, so
neither takes the capacity other requests need. A request head that is not complete within
``keepalive`` seconds is dropped. The worker timeout stays above LOOKUP_DEADLINE_S so the
relay answers with partial results before gunicorn would kill it. A header line may be 20 KiB,
so a token up to the relay's own limit (16 KiB) reaches it and is judged there; what gunicorn
refuses is answered in the relay's envelope. Logs, access log included, are JSON lines on
standard output.
"""

import os
import shutil
import tempfile

bind = os.environ.get('GUNICORN_BIND', f'0.0.0.0:{os.environ.get("PORT", "9090")}')
workers = int(os.environ.get('WEB_CONCURRENCY', '2'))
worker_class = 'serving.RelayWorker'
worker_connections = int(os.environ.get('GUNICORN_WORKER_CONNECTIONS', '1000'))
timeout = int(os.environ.get('GUNICORN_TIMEOUT', '60'))
graceful_timeout = 20
keepalive = 5
# Each worker listens on a socket of its own (SO_REUSEPORT), so the kernel spreads new
# connections over the workers; on one shared socket, keep-alive clients pile onto whichever
# worker accepted first (measured: 74 % of a mix's answers on one of two workers).
reuse_port = True
# "Authorization: Bearer " and a token of MAX_TOKEN_BYTES (16 KiB) fit in a header line; fewer
# header lines than gunicorn's 100 keep a request head under about 1 MiB (fields × line size).
limit_request_field_size = 20 * 1024
limit_request_fields = 50
accesslog = '-'
errorlog = '-'
loglevel = os.environ.get('LOG_LEVEL', 'info').lower()
logger_class = 'logs.JsonAccessLogger'

# Metrics from every worker, added up at /metrics: prometheus-client keeps them in files here.
_METRICS = os.environ.get('METRICS_ENABLED', '').strip().lower() in ('1', 'true', 'yes', 'on')
if _METRICS and not os.environ.get('PROMETHEUS_MULTIPROC_DIR'):
    os.environ['PROMETHEUS_MULTIPROC_DIR'] = tempfile.mkdtemp(prefix='relay-metrics-')


def on_starting(server):
    """Counts from an earlier run of the same directory would be added to this one's."""
    directory = os.environ.get('PROMETHEUS_MULTIPROC_DIR')
    if _METRICS and directory and os.path.isdir(directory):
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def child_exit(server, worker):
    if _METRICS and os.environ.get('PROMETHEUS_MULTIPROC_DIR'):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
