"""Keeps credentials in handles out of logs, errors, files and configs.

A handle URL may carry credentials two ways: user info
(`https://user:password@host/...`) and secret query parameters
(`?token=...`, a signed URL's `X-Goog-Signature=...`). Two functions:

- `redact(handle)`: for display (errors, logs, `repr`, the cache's
  descriptor files). Secrets become `***`.
- `strip_credentials(handle)`: for storage (`HubLayer.get_config`, hence
  `.keras` files) and the cache key. Secrets are removed, so what is left is
  a usable handle that names the same cache entry; credentials come back
  at download time from `HUBKIT_HTTP_AUTH` (see `_http.py`).

Both are total: they accept any object and never raise. A handle without
credentials comes back unchanged, character for character (its cache key
must stay `tensorflow_hub`'s sha1 of the handle).
"""

import re
import urllib.parse

MASK = "***"

# Parameter names that carry credentials: exact names, suffixes (so that
# `access_token` and `X-Amz-Security-Token` match) and the signed-URL
# families of S3 and GCS. Exact and suffix matches, not "contains", because
# removing a parameter that selects content (`model_key=...`) from the cache
# key would let two models share one cache entry.
_SECRET_NAMES = {"key", "auth", "authorization", "sig", "session", "code"}
_SECRET_SUFFIXES = (
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "signature",
    "credential",
    "credentials",
    "apikey",
    "api_key",
    "api-key",
    "access_key",
    "accesskey",
    "sessionid",
    "session_id",
)
_SECRET_PREFIXES = ("x-amz-", "x-goog-")
# For text that `urllib.parse` cannot split (e.g. "http://[::1"):
_USERINFO = re.compile(r"(?<=://)[^/?#@\s]*@")
_QUERY_PAIR = re.compile(r"([?&;])([^=&;#\s]*)=([^&;#\s]*)")


def is_secret_param(name) -> bool:
    """Whether a query parameter named `name` carries a credential.

    Example: `token`, `access_token`, `api_key`, `key`, `X-Goog-Signature`
    and `X-Amz-Credential` do; `model`, `tf-hub-format` and `v` do not.
    """
    lowered = str(name).strip().lower()
    return (
        lowered in _SECRET_NAMES
        or lowered.endswith(_SECRET_SUFFIXES)
        or lowered.startswith(_SECRET_PREFIXES)
    )


def redact(handle) -> str:
    """`handle` as text with user info and secret query values masked.

    For messages, logs, `repr` and descriptor files. The `#fragment` is
    left out (it is never sent to a server, and may hold a token). Never
    raises.

    Args:
        handle: anything; a non-string is shown through `str`.

    Returns:
        The text, with `***` in place of each credential.

    Example:

    ```python
    redact("https://u:p@host/m?token=abc&x=1")
    # 'https://***@host/m?token=***&x=1'
    ```
    """
    return _rewrite(handle, keep_secrets_as=MASK, keep_fragment=False)


def strip_credentials(handle) -> str:
    """`handle` with its credentials removed, for storing and cache keys.

    User info and secret query parameters (see `is_secret_param`) are
    dropped; everything else is kept as written. The result names the same
    cache entry as `handle`, so a layer rebuilt from a stored config finds
    the model already downloaded; a fresh download gets its credentials
    from the `HUBKIT_HTTP_AUTH` environment variable.

    Args:
        handle: anything; a non-string is converted with `str`.

    Returns:
        The handle without credentials (unchanged when it had none).

    Example:

    ```python
    strip_credentials("https://u:p@host/m?token=abc&x=1")
    # 'https://host/m?x=1'
    ```
    """
    return _rewrite(handle, keep_secrets_as=None, keep_fragment=True)


def without_masks(url: str) -> str:
    """`url` without the `***` placeholders `redact` put in it.

    A handle restored from a config may be a redacted one: its `***@` user
    info and `token=***` parameters are placeholders, not credentials, and
    are not sent. Other text is kept as written.
    """
    if MASK not in url or "://" not in url:
        return url
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if netloc.startswith(f"{MASK}@"):
        netloc = netloc[len(MASK) + 1 :]
    pieces = parts.query.split("&") if parts.query else []
    kept = [
        p
        for p in pieces
        if not (p.endswith(f"={MASK}") and is_secret_param(p.split("=", 1)[0]))
    ]
    return urllib.parse.urlunsplit(
        parts._replace(netloc=netloc, query="&".join(kept))
    )


def has_credentials(handle) -> bool:
    """Whether `handle` carries user info or a secret query parameter."""
    return strip_credentials(handle) != _text(handle)


def _text(handle) -> str:
    if isinstance(handle, bytes):
        return handle.decode("utf8", "backslashreplace")
    try:
        return handle if isinstance(handle, str) else str(handle)
    except Exception:  # a broken __str__ must not break an error message
        return f"<{type(handle).__name__}>"


def _rewrite(handle, keep_secrets_as, keep_fragment):
    text = _text(handle)
    if "://" not in text:
        return text
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:
        return _rewrite_unparseable(text, keep_secrets_as)
    netloc = parts.netloc
    if "@" in netloc:
        host = netloc.rsplit("@", 1)[1]
        netloc = host if keep_secrets_as is None else f"{MASK}@{host}"
    query = _rewrite_query(parts.query, keep_secrets_as)
    fragment = ""
    if keep_fragment:
        fragment = _rewrite_query(parts.fragment, keep_secrets_as)
    if (netloc, query, fragment) == (parts.netloc, parts.query, parts.fragment):
        return text  # nothing secret: keep the exact text
    rebuilt = f"{parts.scheme}://{netloc}{parts.path}"
    if query:
        rebuilt += f"?{query}"
    if fragment:
        rebuilt += f"#{fragment}"
    return rebuilt


def _rewrite_query(query, keep_secrets_as):
    if not query:
        return query
    kept = []
    for piece in query.split("&"):
        name = urllib.parse.unquote_plus(piece.split("=", 1)[0])
        if not is_secret_param(name):
            kept.append(piece)
        elif keep_secrets_as is not None:
            kept.append(f"{piece.split('=', 1)[0]}={keep_secrets_as}")
    return "&".join(kept)


def _rewrite_unparseable(text, keep_secrets_as):
    text = _USERINFO.sub("" if keep_secrets_as is None else f"{MASK}@", text)

    def pair(match):
        sep, name, _ = match.groups()
        if not is_secret_param(urllib.parse.unquote_plus(name)):
            return match.group(0)
        if keep_secrets_as is None:
            return sep if sep == "?" else ""
        return f"{sep}{name}={keep_secrets_as}"

    return _QUERY_PAIR.sub(pair, text)
