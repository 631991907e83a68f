"""gunicorn settings for ``gunicorn app:app`` (the Docker image and ``make demo``).

Threaded workers: a lookup spends its time waiting on SpyCloud, so threads serve
other requests meanwhile. The worker timeout stays above LOOKUP_DEADLINE_S so
the relay answers with partial results before gunicorn would kill it.
"""
import os

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
