"""JSON log lines: one per request from the relay, the access log in the same shape.

Every line names its request id, so no line needs the token, the API key or a
password to be traced. Fields are chosen, not dumped: nothing from a request's
headers or body reaches a log line except its route, method and counts.
"""

import json
import logging
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, TextIO

from flask import g, has_request_context
from gunicorn.config import Config
from gunicorn.glogging import Logger as GunicornLogger
from gunicorn.http.message import Request
from gunicorn.http.wsgi import Response

_STANDARD = set(vars(logging.LogRecord('', 0, '', 0, '', (), None))) | {'message', 'asctime'}


def request_id() -> str:
    """The current request's id, or ``-`` outside a request (start-up, gunicorn's own lines)."""
    if has_request_context():
        current: str = g.get('request_id', '-')
        return current
    return '-'


class RequestIdFilter(logging.Filter):
    """Stamps each record with its request's id, so the formatter never looks into Flask."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, 'request_id'):
            record.request_id = request_id()
        return True


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "pid", "request_id", "message", ...extra fields}``."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            'time': time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(record.created))
            + f'.{int(record.msecs):03d}Z',
            'level': record.levelname,
            'logger': record.name,
            'pid': record.process,
            'request_id': getattr(record, 'request_id', '-'),
            'message': record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in line:
                line[name] = value
        if record.exc_info:
            line['exception'] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class _RelayHandler(logging.StreamHandler[TextIO]):
    """Standard error, marked as the relay's own handler (logging_configured)."""

    relay_handler = True


def logging_configured() -> bool:
    """Whether this process has its JSON handler: the app factory then leaves logging alone."""
    return any(getattr(h, 'relay_handler', False) for h in logging.getLogger().handlers)


def configure_logging(level: str) -> None:
    """One JSON handler on the root logger, installed once per process; called again, only the
    levels are set anew. Meant for process start (gunicorn's ``on_starting``); the app
    factory calls it only in a process that has not done so (tests, ``flask run``)."""
    root = logging.getLogger()
    if not logging_configured():
        handler = _RelayHandler()
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger('werkzeug').setLevel(logging.WARNING)
    # urllib3 logs each retry with the URL, which holds the looked-up address; retries are
    # counted in the request's log line and in the metrics instead.
    logging.getLogger('urllib3').setLevel(
        logging.DEBUG if level.upper() == 'DEBUG' else logging.ERROR
    )


# gunicorn ships no type information (pyproject.toml's override), so its logger class is Any;
# unused-ignore: only the strict check forbids subclassing Any.
class JsonAccessLogger(GunicornLogger):  # type: ignore[misc, unused-ignore]
    """gunicorn's access and error logs as JSON lines (``logger_class`` in gunicorn_conf.py)."""

    def setup(self, cfg: Config) -> None:
        super().setup(cfg)
        # gunicorn logs access at INFO whatever its loglevel; LOG_LEVEL=warning means quiet
        self.access_log.setLevel(self.error_log.level)
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                handler.setFormatter(JsonFormatter())
                handler.addFilter(RequestIdFilter())

    def access(
        self,
        resp: Response,
        req: Request,
        environ: Mapping[str, Any],
        request_time: timedelta,
    ) -> None:
        if not (self.cfg.accesslog or self.cfg.logconfig or self.cfg.syslog):
            return
        headers = dict((name.lower(), value) for name, value in resp.headers)
        self.access_log.info(
            'access',
            extra={
                'request_id': headers.get('x-request-id', '-'),
                'method': environ.get('REQUEST_METHOD'),
                'path': environ.get('PATH_INFO'),
                'status': resp.status_code if hasattr(resp, 'status_code') else resp.status,
                'bytes': getattr(resp, 'sent', None),
                'duration_ms': round(request_time.total_seconds() * 1000, 1),
                'remote': environ.get('REMOTE_ADDR'),
                'user_agent': (environ.get('HTTP_USER_AGENT') or '')[:200],
            },
        )
