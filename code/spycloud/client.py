"""The SpyCloud Enterprise API v2 client.

One ``requests.Session`` per process keeps TCP/TLS connections alive, and its
adapter retries throttling and gateway errors with urllib3's ``Retry``.
Catalogs are cached per API key and fetched concurrently, once per distinct
source, where Cisco's relay fetched one per record, one at a time.
"""
import hashlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import requests
from cachetools import TTLCache
from requests.adapters import HTTPAdapter
from urllib3 import exceptions as urllib3_exceptions
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from api.errors import (AuthorizationError, InternalServerError, NotFoundError, RelayWarning,
                        TooManyRequestsError, UnknownError, catalog_missing)
from config import VERSION
from spycloud.models import BreachRecord, Catalog, Exposure, MalformedData

log = logging.getLogger(__name__)

USER_AGENT = f'SpyCloud-XDR-Relay/{VERSION}'
PAGE_ENDPOINTS = {
    'email': 'breach/data/emails/',
}
HEALTH_ENDPOINT = 'breach/catalog/1'
QUOTA_ERROR_TYPE = 'LimitExceededException'
MAX_MESSAGE_CHARS = 300


def is_quota_exhausted(headers):
    return QUOTA_ERROR_TYPE.lower() in headers.get('x-amzn-ErrorType', '').lower()


class SpyCloudRetry(Retry):
    """urllib3's Retry, except a 429 for an exhausted monthly quota is final."""

    def increment(self, method=None, url=None, response=None, error=None,
                  _pool=None, _stacktrace=None):
        if response is not None and response.status == 429 \
                and is_quota_exhausted(response.headers):
            raise MaxRetryError(_pool, url, 'monthly quota exhausted')
        return super().increment(method, url, response, error, _pool, _stacktrace)


def build_session(settings):
    retry = SpyCloudRetry(
        total=settings.spycloud_retries,
        connect=settings.spycloud_retries,
        read=min(1, settings.spycloud_retries),
        status=settings.spycloud_retries,
        other=0,
        allowed_methods=frozenset({'GET'}),
        status_forcelist=(429, 502, 503, 504),
        backoff_factor=settings.spycloud_backoff_s,
        backoff_jitter=settings.spycloud_backoff_s / 2,
        backoff_max=max(settings.spycloud_backoff_s * 8, 1.0),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    pool_size = settings.spycloud_max_workers + 4
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=retry,
                          pool_block=False)
    session = requests.Session()
    session.mount('https://', adapter)
    session.mount('http://', adapter)
    session.headers.update({'Accept': 'application/json', 'User-Agent': USER_AGENT})
    return session


def key_fingerprint(api_key):
    """Cache keys carry a hash of the API key, never the key itself."""
    return hashlib.sha256(api_key.encode('utf-8')).hexdigest()[:32]


def upstream_message(response):
    """SpyCloud's own words for an error, trimmed; falls back to the HTTP reason."""
    message = ''
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for name in ('message', 'errorMessage', 'error'):
            if isinstance(body.get(name), str) and body[name].strip():
                message = body[name].strip()
                break
    message = message or response.reason or f'HTTP {response.status_code}'
    detail = response.headers.get('SpyCloud-Error', '').strip()
    if detail and detail.lower() not in message.lower():
        message = f'{message} ({detail})'
    return ' '.join(message.split())[:MAX_MESSAGE_CHARS]


def error_for(response):
    """The RelayError for a non-2xx answer, or None where the caller reads 400 as 'no data'."""
    status = response.status_code
    if status in (401, 403):
        return AuthorizationError(upstream_message(response))
    if status == 404:
        return NotFoundError('The SpyCloud API answered 404 Not Found: '
                             'check SPYCLOUD_API_URL.')
    if status == 429:
        if is_quota_exhausted(response.headers):
            return TooManyRequestsError(
                'The SpyCloud monthly quota of this API key is exhausted; '
                'SpyCloud support can raise it.')
        return TooManyRequestsError('Too many requests have been made to SpyCloud. '
                                    'Please, try again later.')
    if status == 500:
        return InternalServerError(f'The SpyCloud internal error: {upstream_message(response)}')
    return UnknownError(f'SpyCloud answered HTTP {status}: {upstream_message(response)}')


def more_records(observable, shown, hits):
    return RelayWarning(
        'too many records',
        f'Showing the newest {shown} of {hits} SpyCloud records for {observable["value"]}. '
        'Raise the module\'s Entities Limit (up to 1000) to see more, or open the '
        'SpyCloud portal for the full list.')


class SpyCloudClient:
    """Process-wide; the API key is given per call because each XDR module has its own."""

    def __init__(self, settings, session=None):
        self._settings = settings
        self._base = settings.spycloud_api_url
        self._session = session or build_session(settings)
        self._timeout = (settings.connect_timeout_s, settings.read_timeout_s)
        self._catalogs = TTLCache(maxsize=settings.catalog_cache_size,
                                  ttl=settings.catalog_cache_ttl_s)
        self._catalogs_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=settings.spycloud_max_workers,
                                        thread_name_prefix='spycloud')

    def close(self):
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()

    # -- the calls -------------------------------------------------------------

    def check(self, api_key):
        """One cheap authenticated call, for /health."""
        self._get(api_key, HEALTH_ENDPOINT)

    def exposure(self, api_key, observable, limit):
        """The newest ``limit`` records of an observable, with their catalogs."""
        records, hits, warnings = self.breach_records(api_key, observable, limit)
        ids = list(dict.fromkeys(r.source_id for r in records if r.source_id is not None))
        catalogs = self.catalogs(api_key, ids)
        for catalog_id in ids:
            if catalog_id not in catalogs:
                warnings.append(catalog_missing(catalog_id))
        if hits > len(records):
            warnings.append(more_records(observable, len(records), hits))
        return Exposure(observable=observable, records=records, hits=hits,
                        catalogs=catalogs, warnings=warnings)

    def breach_records(self, api_key, observable, limit):
        """Follows ``cursor`` until ``limit`` records are collected or SpyCloud has no more."""
        path = PAGE_ENDPOINTS[observable['type']] + quote(observable['value'], safe='@')
        records, seen, warnings = [], set(), []
        hits, cursor, skipped = 0, None, 0
        while True:
            params = {'cursor': cursor} if cursor else None
            page = self._get(api_key, path, params, bad_request_means_empty=True)
            if page is None:
                break
            hits = max(hits, _int_or(page.get('hits'), 0))
            results = page.get('results')
            for raw in results if isinstance(results, list) else ():
                try:
                    record = BreachRecord.from_api(raw)
                except MalformedData:
                    skipped += 1
                    continue
                if record.document_id not in seen:
                    seen.add(record.document_id)
                    records.append(record)
            cursor = page.get('cursor')
            if len(records) >= limit or not isinstance(cursor, str) or not cursor.strip():
                break
        if skipped:
            warnings.append(RelayWarning(
                'invalid data', f'SpyCloud sent {skipped} malformed breach record(s) for '
                                f'{observable["value"]}; they are left out.'))
        records.sort(key=_newest_first)
        return records[:limit], max(hits, len(records)), warnings

    def catalogs(self, api_key, ids):
        """catalog id → Catalog for those SpyCloud knows; cache first, then concurrent fetches."""
        fingerprint = key_fingerprint(api_key)
        found, missing = {}, []
        with self._catalogs_lock:
            for catalog_id in ids:
                cached = self._catalogs.get((fingerprint, catalog_id))
                if cached is not None:
                    found[catalog_id] = cached
                else:
                    missing.append(catalog_id)
        if not missing:
            return found
        futures = [self._pool.submit(self._fetch_catalog, api_key, cid) for cid in missing]
        for catalog_id, future in zip(missing, futures):
            catalog = future.result()
            if catalog is not None:
                found[catalog_id] = catalog
                with self._catalogs_lock:
                    self._catalogs[(fingerprint, catalog_id)] = catalog
        return found

    def _fetch_catalog(self, api_key, catalog_id):
        page = self._get(api_key, f'breach/catalog/{catalog_id}', bad_request_means_empty=True)
        results = page.get('results') if page else None
        for raw in results if isinstance(results, list) else ():
            try:
                catalog = Catalog.from_api(raw)
            except MalformedData:
                continue
            if catalog.id == catalog_id:
                return catalog
        return None

    # -- HTTP ------------------------------------------------------------------

    def _get(self, api_key, path, params=None, bad_request_means_empty=False):
        try:
            api_key.encode('latin-1')
        except UnicodeEncodeError:
            raise AuthorizationError('Unauthorized') from None
        url = self._base + path
        try:
            response = self._session.get(url, params=params, timeout=self._timeout,
                                         headers={'X-API-Key': api_key})
        except requests.exceptions.SSLError as error:
            raise UnknownError(f'Unable to verify SSL certificate: {_reason(error)}') from None
        except requests.exceptions.ConnectionError as error:
            if _timed_out(error):
                raise UnknownError(f'SpyCloud did not answer in time ({self._host()}).') from None
            raise UnknownError(f'Unable to connect to SpyCloud at {self._host()}: '
                               f'{_reason(error)}') from None
        except requests.RequestException as error:
            raise UnknownError(f'The request to SpyCloud failed: {_reason(error)}') from None
        with response:
            if response.status_code == 400 and bad_request_means_empty:
                return None
            if not response.ok:
                raise error_for(response)
            try:
                body = response.json()
            except ValueError:
                raise UnknownError('SpyCloud sent an answer that is not valid JSON.') from None
        if not isinstance(body, dict):
            raise UnknownError('SpyCloud sent an answer of an unexpected shape.')
        return body

    def _host(self):
        return self._base.split('/')[2]


def _timed_out(error):
    """requests reports a read timeout that used up the retries as a ConnectionError."""
    if isinstance(error, requests.exceptions.Timeout):
        return True
    reason = _innermost(error)
    if isinstance(reason, urllib3_exceptions.NewConnectionError):  # a subclass of the timeout
        return False
    return isinstance(reason, (urllib3_exceptions.TimeoutError, TimeoutError))


def _innermost(error):
    reason = error
    for _ in range(6):
        inner = getattr(reason, 'reason', None) or (reason.args[0] if reason.args else None)
        if not isinstance(inner, BaseException):
            break
        reason = inner
    return reason


def _reason(error):
    """The innermost reason of a requests/urllib3 error, without URLs or headers."""
    text = str(_innermost(error))
    return ' '.join(text.split())[:MAX_MESSAGE_CHARS]


def _int_or(value, default):
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _newest_first(record):
    return -record.published.timestamp()
