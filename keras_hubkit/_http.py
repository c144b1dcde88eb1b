"""HTTP(S) downloads with timeouts, a deadline, bounded retries and redirects,
and credentials that stay with their host.

- Every read waits at most `read_timeout`, and the whole download (retries
  and redirects included) ends at `deadline`: a timer shuts the socket down,
  so even a server that drips one byte per timeout is cut off.
- Only http(s) redirects are followed, never from https down to http, at
  most `constants.MAX_REDIRECTS` of them.
- Credentials in the handle (`https://user:password@host/...`) go to the
  handle's own origin (scheme, host, port) only, as an `Authorization`
  header; a redirect to another origin drops them. `HUBKIT_HTTP_AUTH` gives
  credentials per host, sent to that host only.
"""

import base64
import contextlib
import email.utils
import http.client
import logging
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from keras_hubkit import constants
from keras_hubkit import errors
from keras_hubkit._redact import MASK
from keras_hubkit._redact import redact

logger = logging.getLogger(__name__)

_RETRY_STATUS = {429, 500, 502, 503, 504}
_REDIRECT_STATUS = (301, 302, 303, 307, 308)
_CHUNK = 1 << 20
_DEFAULT_PORTS = {"http": 80, "https": 443}


def check_url(url) -> urllib.parse.SplitResult:
    """Returns the parts of an http(s) URL, or raises `HandleError`.

    Refused: characters outside ASCII, spaces and control characters (they
    must be percent-encoded), a missing host, a bad port.
    """
    shown = redact(url)
    bad = [c for c in url if ord(c) > 126 or ord(c) < 33]
    if bad:
        what = "a space" if bad[0] == " " else f"the character {bad[0]!r}"
        raise errors.HandleError(
            "Expected a URL of printable ASCII characters. Received: "
            f"handle={shown!r}, which contains {what}. Percent-encode it "
            "(e.g. urllib.parse.quote(path)) or use the URL the server "
            "publishes."
        )
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as e:
        raise errors.HandleError(
            f"Expected a well-formed URL. Received: handle={shown!r} ({e}). "
            "Check the host and port."
        ) from None
    if not parts.hostname:
        raise errors.HandleError(
            f"Expected a URL with a host. Received: handle={shown!r}, which "
            "has none. Write it as https://HOST/PATH."
        )
    return parts


@contextlib.contextmanager
def open_url(
    url,
    *,
    connect_timeout,
    read_timeout,
    retries,
    backoff,
    deadline=constants.DOWNLOAD_DEADLINE,
):
    """Opens `url` and yields a length-checked stream of its body.

    Retries connection errors, timeouts, 429 and 5xx up to `retries` times
    with exponential backoff; any other 4xx fails at once. The whole call,
    retries and reading the body included, ends by `deadline` seconds.

    Raises:
        HandleError: a malformed URL, or a bad `HUBKIT_HTTP_AUTH`.
        HandleNotFoundError: 404 or 410.
        DownloadError: anything else that stops the download.
    """
    parts = check_url(url)
    source = redact(url)
    clock = _Deadline(deadline, source)
    try:
        credentials = _Credentials(parts)
        opener = urllib.request.build_opener(
            _Redirects(credentials, source),
            _HTTPHandler(clock),
            _HTTPSHandler(clock),
        )
        request = credentials.request(url)
        response = _open(
            opener, request, clock, connect_timeout, retries, backoff
        )
        clock.set_timeout(read_timeout)
        with response:
            yield _LengthChecked(response, source, read_timeout, clock)
    finally:
        clock.cancel()


def _open(opener, request, clock, connect_timeout, retries, backoff):
    source = clock.source
    for attempt in range(retries + 1):
        last = attempt == retries
        try:
            return opener.open(
                request, timeout=min(connect_timeout, clock.remaining())
            )
        except errors.HubkitError:
            raise
        except urllib.error.HTTPError as e:
            if e.code in _RETRY_STATUS and not last:
                _sleep(attempt, backoff, e.headers.get("Retry-After"), clock)
                continue
            raise _status_error(source, e) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            if clock.expired:
                raise clock.error(0) from None
            reason = getattr(e, "reason", e)
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise errors.DownloadError(
                    f"Expected {source} to present a certificate this "
                    f"machine trusts. Received: {reason.verify_message}. "
                    "If your organisation uses its own certificate "
                    "authority, point SSL_CERT_FILE at its certificate "
                    "(verification is never switched off)."
                ) from None
            if not last:
                _sleep(attempt, backoff, None, clock)
                continue
            reason = getattr(e, "reason", e)
            raise errors.DownloadError(
                f"Could not reach {source} after {retries + 1} attempts: "
                f"{reason}. Check the network (or set HUBKIT_OFFLINE=1 to "
                "use only cached models)."
            ) from e
    raise AssertionError("unreachable")


# ------------------------------------------------------------ credentials
def _origin(parts):
    scheme = parts.scheme.lower()
    return (
        scheme,
        (parts.hostname or "").lower(),
        parts.port or (_DEFAULT_PORTS.get(scheme)),
    )


def _basic(user, password):
    pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def _without_userinfo(url):
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class _Credentials:
    """Which `Authorization` header, if any, each request may carry.

    The handle's user info goes to its first origin only. A user info of
    `***` (a handle that went through `redact`) is no credential.
    """

    def __init__(self, first):
        self._origin = _origin(first)
        self._own = None
        if first.username not in (None, MASK):
            self._own = _basic(first.username, first.password or "")
        self._by_host = parse_auth_env()

    def header_for(self, parts):
        if self._own is not None and _origin(parts) == self._origin:
            return self._own
        host = (parts.hostname or "").lower()
        port = _origin(parts)[2]
        return self._by_host.get(f"{host}:{port}") or self._by_host.get(host)

    def request(self, url):
        url = _without_userinfo(url)
        request = urllib.request.Request(
            url, headers={"User-Agent": "keras_hubkit"}
        )
        self.authorize(request)
        return request

    def authorize(self, request):
        header = self.header_for(urllib.parse.urlsplit(request.full_url))
        if header:
            # Unredirected: urllib must not copy it to a redirect's request.
            request.add_unredirected_header("Authorization", header)


def parse_auth_env(text=None):
    """Reads `HUBKIT_HTTP_AUTH`: host -> `Authorization` header value.

    Entries are separated by `;` or newlines, each `HOST=user:password`
    (percent-encoded like URL user info, sent as Basic auth) or
    `HOST=Bearer TOKEN` (any `SCHEME VALUE`, sent as it is). `HOST` may
    carry a port (`host:8443`) to match that port only.

    Raises:
        ConfigError: an entry is malformed (its value is never shown).
    """
    if text is None:
        import os

        text = os.environ.get(constants.HTTP_AUTH_ENV, "")
    found = {}
    for number, entry in enumerate(text.replace("\n", ";").split(";"), 1):
        entry = entry.strip()
        if not entry:
            continue
        host, sep, credential = entry.partition("=")
        host = host.strip().lower()
        credential = credential.strip()
        if not sep or not host or not credential or "/" in host:
            raise errors.ConfigError(
                f"Expected entries HOST=user:password or HOST=Bearer TOKEN "
                f"in {constants.HTTP_AUTH_ENV}. Received: entry {number} is "
                "malformed (not shown: it may hold a secret). Fix that "
                "entry; separate entries with ';'."
            )
        if " " in credential:
            found[host] = credential  # "Bearer TOKEN" and the like
        else:
            user, _, password = credential.partition(":")
            found[host] = _basic(user, password)
    return found


# --------------------------------------------------------------- redirects
class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows http(s) redirects only; re-decides credentials for each."""

    max_redirections = constants.MAX_REDIRECTS

    def __init__(self, credentials, source):
        self._credentials = credentials
        self._source = source

    def http_error_302(self, req, fp, code, msg, headers):
        location = headers.get("Location") or headers.get("URI")
        if location:
            target = urllib.parse.urljoin(req.full_url, location.strip())
            check_redirect(self._source, req.full_url, target)
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_302
    http_error_308 = http_error_302

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_redirect(self._source, req.full_url, newurl)
        new = super().redirect_request(
            req, fp, code, msg, headers, _without_userinfo(newurl)
        )
        if new is not None:
            # Only the unredirected Authorization was dropped by urllib;
            # decide afresh for the new origin.
            self._credentials.authorize(new)
            logger.info("Redirected to %s", redact(new.full_url))
        return new


def check_redirect(source, old, new):
    old_scheme = urllib.parse.urlsplit(old).scheme.lower()
    new_scheme = urllib.parse.urlsplit(new).scheme.lower()
    if new_scheme not in ("http", "https"):
        raise errors.DownloadError(
            f"Expected redirects to http(s) URLs only. Received: {source} "
            f"redirected to {redact(new)!r} (scheme {new_scheme!r}). Not "
            "followed; check the handle, or download the model yourself."
        )
    if old_scheme == "https" and new_scheme == "http":
        raise errors.DownloadError(
            f"Expected redirects to stay on https. Received: {source} "
            f"redirected to {redact(new)!r}, plain http. Not followed: it "
            "would expose the download (and any credentials) in transit."
        )


# ---------------------------------------------------------------- deadline
class _Deadline:
    """Ends a download after `seconds`, whatever the server does.

    Sockets are registered as they connect; when the time is up, a timer
    shuts them down, which wakes any read blocked on them.
    """

    def __init__(self, seconds, source):
        if not seconds or seconds <= 0:
            raise errors.ConfigError(
                "Expected a positive download deadline in seconds. Received: "
                f"deadline={seconds!r}. Pass e.g. deadline=3600."
            )
        self.seconds = seconds
        self.source = source
        self._end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets = []
        self._fired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self):
        return max(self._end - time.monotonic(), 0.001)

    @property
    def expired(self):
        return self._fired or time.monotonic() >= self._end

    def watch(self, sock):
        with self._lock:
            self._sockets.append(sock)
            fired = self._fired
        if fired:
            _shutdown(sock)

    def set_timeout(self, read_timeout):
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.settimeout(read_timeout)

    def _expire(self):
        with self._lock:
            self._fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def cancel(self):
        self._timer.cancel()

    def error(self, received):
        return errors.DownloadError(
            f"Expected {self.source} to download within the deadline of "
            f"{self.seconds:g}s. Received: {received} bytes by then (a slow "
            "or stalling server). Nothing was cached. Raise the deadline "
            "with hk.resolve(..., deadline=SECONDS) or the "
            f"{constants.DOWNLOAD_DEADLINE_ENV} environment variable, then "
            "retry."
        )


def _shutdown(sock):
    # socket.socket's own shutdown: for TLS it skips the SSL close-notify,
    # which could block, and just wakes the blocked read.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _watched(base, clock):
    class Connection(base):
        def connect(self):
            super().connect()
            clock.watch(self.sock)

    return Connection


class _WatchedTLSContext(ssl.SSLContext):
    """Registers each TLS socket with the deadline before its handshake,
    so a server that drips the handshake is cut off too.
    """

    clock = None

    def wrap_socket(self, sock, *args, do_handshake_on_connect=True, **kw):
        wrapped = super().wrap_socket(
            sock, *args, do_handshake_on_connect=False, **kw
        )
        self.clock.watch(wrapped)
        if do_handshake_on_connect:
            wrapped.do_handshake()
        return wrapped


def _tls_context(clock):
    # What ssl.create_default_context() sets up for a client: certificate
    # and host name checks on, the system's CA certificates.
    context = _WatchedTLSContext(ssl.PROTOCOL_TLS_CLIENT)
    context.clock = clock
    context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    context.set_alpn_protocols(["http/1.1"])
    return context


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, clock):
        super().__init__()
        self._clock = clock

    def http_open(self, req):
        return self.do_open(
            _watched(http.client.HTTPConnection, self._clock), req
        )


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, clock):
        super().__init__()
        self._clock = clock
        self._tls = None

    def https_open(self, req):
        # Made on the first https request, not with the handler: loading
        # the system's CA certificates takes about 20 ms, which a download
        # over http never needs.
        if self._tls is None:
            self._tls = _tls_context(self._clock)
        return self.do_open(http.client.HTTPSConnection, req, context=self._tls)


# ------------------------------------------------------------------ errors
def _status_error(source, e):
    if 300 <= e.code < 400:
        return errors.DownloadError(
            f"{source} redirected more than {constants.MAX_REDIRECTS} times "
            f"or in a loop (HTTP {e.code}). Check the handle."
        )
    hint = {
        404: "Check the handle: no model is published there.",
        410: "Check the handle: no model is published there.",
        401: "The server wants credentials: put them in the URL, or in the "
        f"{constants.HTTP_AUTH_ENV} environment variable (a handle "
        "restored from a saved layer carries none).",
    }.get(e.code, "Check the URL and your access to it.")
    if e.code == 403:
        hint = hint + (
            f" Credentials come from the URL or {constants.HTTP_AUTH_ENV}."
        )
    message = f"{source} answered HTTP {e.code} ({e.reason}). {hint}"
    if e.code in (404, 410):
        return errors.HandleNotFoundError(message)
    return errors.DownloadError(message)


def _sleep(attempt, backoff, retry_after, clock):
    delay = backoff * (2**attempt)
    if retry_after:
        try:
            delay = max(delay, min(float(retry_after), 30.0))
        except ValueError:
            with contextlib.suppress(TypeError, ValueError):
                parsed = email.utils.parsedate_to_datetime(retry_after)
                delay = max(delay, min(parsed.timestamp() - time.time(), 30))
    if delay >= clock.remaining():
        raise clock.error(0)
    logger.info("Retrying in %.1fs.", delay)
    time.sleep(delay)


class _LengthChecked:
    """Reads a response; a stall, a short body or the deadline is a
    `DownloadError`.

    `read1` returns what one receive brings, so no call waits for more than
    one `read_timeout` (a plain `read(n)` keeps waiting until `n` bytes).
    """

    def __init__(self, response, source, read_timeout, clock):
        self._response = response
        self.source = source
        self._read_timeout = read_timeout
        self._clock = clock
        length = response.headers.get("Content-Length")
        self.length = int(length) if length and length.isdigit() else None
        self.received = 0

    def read(self, n=-1):
        if self._clock.expired:
            raise self._clock.error(self.received)
        size = n if n and n > 0 else _CHUNK
        try:
            chunk = self._response.read1(size)
        except http.client.IncompleteRead as e:
            raise self._failed(
                self._short(self.received + len(e.partial))
            ) from None
        except TimeoutError as e:
            raise self._failed(
                errors.DownloadError(
                    f"{self.source} stalled: no data for "
                    f"{self._read_timeout}s after {self.received} bytes. "
                    "Nothing was cached; retry."
                )
            ) from e
        except (OSError, http.client.HTTPException) as e:
            raise self._failed(
                errors.DownloadError(
                    f"The connection to {self.source} failed after "
                    f"{self.received} bytes: {e}. Nothing was cached; retry."
                )
            ) from e
        if not chunk and self._clock.expired:
            raise self._clock.error(self.received)
        self.received += len(chunk)
        if not chunk and self.length is not None:
            if self.received < self.length:
                raise self._short(self.received)
        return chunk

    def _failed(self, error):
        return (
            self._clock.error(self.received) if self._clock.expired else error
        )

    def _short(self, received):
        return errors.DownloadError(
            f"{self.source} sent {received} bytes but announced "
            f"{self.length} (Content-Length). The download was cut short; "
            "nothing was cached. Retry."
        )
