"""HTTP(S) downloads with timeouts, bounded retries and honest errors."""

import base64
import contextlib
import email.utils
import http.client
import logging
import time
import urllib.error
import urllib.parse
import urllib.request

from keras_hubkit import errors
from keras_hubkit._redact import redact

logger = logging.getLogger(__name__)

_RETRY_STATUS = {429, 500, 502, 503, 504}


@contextlib.contextmanager
def open_url(url, *, connect_timeout, read_timeout, retries, backoff):
    """Opens `url` (redirects followed) and yields a length-checked stream.

    Retries connection errors, timeouts, 429 and 5xx up to `retries` times
    with exponential backoff; any other 4xx fails at once.
    """
    source = redact(url)
    request = _request(url)
    for attempt in range(retries + 1):
        last = attempt == retries
        try:
            response = urllib.request.urlopen(request, timeout=connect_timeout)
            break
        except urllib.error.HTTPError as e:
            if e.code in _RETRY_STATUS and not last:
                _sleep(attempt, backoff, e.headers.get("Retry-After"))
                continue
            raise _status_error(source, e) from None
        except (urllib.error.URLError, OSError) as e:
            if not last:
                _sleep(attempt, backoff, None)
                continue
            reason = getattr(e, "reason", e)
            raise errors.DownloadError(
                f"Could not reach {source} after {retries + 1} attempts: "
                f"{reason}. Check the network (or set HUBKIT_OFFLINE=1 to "
                "use only cached models)."
            ) from e
    _set_read_timeout(response, read_timeout)
    with response:
        yield _LengthChecked(response, source, read_timeout)


def _request(url):
    # Credentials in the URL become a header, so they never reach a log.
    parts = urllib.parse.urlsplit(url)
    headers = {"User-Agent": "keras_hubkit"}
    if parts.username is not None:
        pair = f"{urllib.parse.unquote(parts.username)}:"
        pair += urllib.parse.unquote(parts.password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(
            pair.encode()
        ).decode("ascii")
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return urllib.request.Request(url, headers=headers)


def _status_error(source, e):
    message = f"{source} answered HTTP {e.code} ({e.reason}). " + (
        "Check the handle: no model is published there."
        if e.code in (404, 410)
        else "Check the URL and your access to it."
    )
    if e.code in (404, 410):
        return errors.HandleNotFoundError(message)
    return errors.DownloadError(message)


def _sleep(attempt, backoff, retry_after):
    delay = backoff * (2**attempt)
    if retry_after:
        try:
            delay = max(delay, min(float(retry_after), 30.0))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(retry_after)
            if parsed is not None:
                delay = max(delay, min(parsed.timestamp() - time.time(), 30))
    logger.info("Retrying in %.1fs.", delay)
    time.sleep(delay)


def _set_read_timeout(response, read_timeout):
    # urlopen's timeout covers the connection; reads get their own.
    raw = getattr(getattr(response, "fp", None), "raw", None)
    sock = getattr(raw, "_sock", None)
    if sock is not None:
        sock.settimeout(read_timeout)


class _LengthChecked:
    """Reads a response; a stall or a short body is a `DownloadError`."""

    def __init__(self, response, source, read_timeout):
        self._response = response
        self.source = source
        self._read_timeout = read_timeout
        length = response.headers.get("Content-Length")
        self.length = int(length) if length and length.isdigit() else None
        self.received = 0

    def read(self, n=-1):
        try:
            chunk = self._response.read(n if n and n > 0 else None)
        except http.client.IncompleteRead as e:
            raise self._short(self.received + len(e.partial)) from None
        except TimeoutError as e:
            raise errors.DownloadError(
                f"{self.source} stalled: no data for {self._read_timeout}s "
                f"after {self.received} bytes. Nothing was cached; retry."
            ) from e
        self.received += len(chunk)
        if not chunk and self.length is not None:
            if self.received < self.length:
                raise self._short(self.received)
        return chunk

    def _short(self, received):
        return errors.DownloadError(
            f"{self.source} sent {received} bytes but announced "
            f"{self.length} (Content-Length). The download was cut short; "
            "nothing was cached. Retry."
        )
