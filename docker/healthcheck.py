"""The image's HEALTHCHECK: GET /watchdog with a Health-Check header, where gunicorn listens.

Follows GUNICORN_BIND / PORT like code/spycloud_relay/gunicorn_conf.py (a wildcard address is
asked on loopback; ``unix:PATH`` is supported). Exit 0 when the relay echoes the header, else 1.
Standard library only.
"""

import http.client
import json
import os
import socket
import sys

TOKEN = 'docker-healthcheck'


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__('localhost', timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def connection(timeout=4):
    bind = os.environ.get('GUNICORN_BIND') or f'0.0.0.0:{os.environ.get("PORT", "9090")}'
    bind = bind.split(',')[0].strip()
    if bind.startswith('unix:'):
        return UnixHTTPConnection(bind[len('unix:') :], timeout)
    host, _, port = bind.rpartition(':')
    host = host.strip('[]')
    host = {'': '127.0.0.1', '0.0.0.0': '127.0.0.1', '::': '::1'}.get(host, host)
    return http.client.HTTPConnection(host, int(port), timeout=timeout)


def main():
    try:
        conn = connection()
        conn.request('GET', '/watchdog', headers={'Health-Check': TOKEN})
        response = conn.getresponse()
        body = response.read(65536)
        ok = response.status == 200 and json.loads(body).get('data') == TOKEN
    except Exception as exc:  # any failure is 'unhealthy', with its reason in docker inspect
        print(f'unhealthy: {exc!r}')
        return 1
    print('healthy' if ok else f'unhealthy: HTTP {response.status} {body[:200]!r}')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
