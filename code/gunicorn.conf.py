"""gunicorn settings for ``gunicorn app:app`` (the Docker image and ``make demo``).

Threaded workers: a lookup spends its time waiting on SpyCloud, so threads serve
other requests meanwhile. The worker timeout stays above LOOKUP_DEADLINE_S so
the relay answers with partial results before gunicorn would kill it. Logs,
access log included, are JSON lines on standard output.
"""
import os
import shutil
import tempfile

bind = os.environ.get('GUNICORN_BIND', f'0.0.0.0:{os.environ.get("PORT", "9090")}')
workers = int(os.environ.get('WEB_CONCURRENCY', '2'))
worker_class = 'gthread'
threads = int(os.environ.get('GUNICORN_THREADS', '8'))
timeout = int(os.environ.get('GUNICORN_TIMEOUT', '60'))
graceful_timeout = 20
keepalive = 5
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
