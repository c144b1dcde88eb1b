"""Removes credentials from URLs before they reach logs, files or errors."""

import re
import urllib.parse

_SECRET_PARAMS = re.compile(
    r"(token|key|secret|sig|signature|password|passwd|auth|credential|"
    r"session|x-amz-|x-goog-)",
    re.IGNORECASE,
)


def redact(handle: str) -> str:
    """`handle` with user:password and secret-looking query values hidden.

    Example: `https://u:p@host/m?token=abc&x=1` -> `https://***@host/m?token=***&x=1`.
    """
    if "://" not in handle:
        return handle
    try:
        parts = urllib.parse.urlsplit(handle)
    except ValueError:
        return "(unparseable URL)"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = [(k, "***" if _SECRET_PARAMS.search(k) else v) for k, v in query]
    return urllib.parse.urlunsplit(
        (
            parts.scheme,
            netloc,
            parts.path,
            urllib.parse.urlencode(query, safe="*"),
            "",
        )
    )
