"""`hk.resolve`: a model handle (path or URL) -> a local SavedModel folder.

Each kind of handle is one resolver class with `is_supported(handle)` and
`__call__(handle, options)`; `resolve` asks them in order. A new scheme is a
new class, not another branch.
"""

import dataclasses
import logging
import os
import urllib.parse

from keras_hubkit import _archive
from keras_hubkit import _http
from keras_hubkit import constants
from keras_hubkit import errors
from keras_hubkit._progress import ByteProgress
from keras_hubkit._progress import progress_enabled
from keras_hubkit._redact import redact
from keras_hubkit._redact import without_masks
from keras_hubkit.model_cache import ModelCache

logger = logging.getLogger(__name__)

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


@dataclasses.dataclass(frozen=True)
class _Options:
    cache: ModelCache
    offline: bool
    progress: bool
    connect_timeout: float
    read_timeout: float
    max_retries: int
    max_bytes: int
    max_members: int
    deadline: float


def resolve(
    handle,
    *,
    cache_dir=None,
    offline=None,
    progress=None,
    connect_timeout=constants.CONNECT_TIMEOUT,
    read_timeout=constants.READ_TIMEOUT,
    max_retries=constants.MAX_RETRIES,
    max_bytes=constants.MAX_ARCHIVE_BYTES,
    max_members=constants.MAX_ARCHIVE_MEMBERS,
    deadline=None,
) -> str:
    """Returns a local folder that holds the SavedModel named by `handle`.

    - A local path (or `file://` URL) is returned as is, once it exists.
    - An `http(s)://` handle is fetched per the TF Hub hosting protocol
      (`?tf-hub-format=compressed`, http(s) redirects followed, a .tar.gz
      streamed), unpacked safely into the cache and its folder returned.
      The next call finds it in the cache and opens no socket. tfhub.dev,
      Kaggle Models and any server that implements the protocol work.
      Credentials in the URL (`https://user:password@host/...`) go to that
      host only; `HUBKIT_HTTP_AUTH` supplies them per host instead.
    - `gs://` and other `tf.io.gfile` filesystems: a folder is read in place;
      a `.tar.gz` goes through the cache like a download.

    Args:
        handle: a path or URL.
        cache_dir: the cache folder (default: see `hk.ModelCache`).
        offline: use only the cache; default from `HUBKIT_OFFLINE=1`.
        progress: show a progress bar; default on when stderr is a terminal.
        connect_timeout: seconds to wait for a connection.
        read_timeout: seconds to wait for the next bytes of a download.
        max_retries: retries after a connection error, timeout, 429 or 5xx.
        max_bytes: the most bytes an archive may unpack to.
        max_members: the most members an archive may have.
        deadline: the most seconds a whole download may take, retries
            included (default `HUBKIT_DOWNLOAD_DEADLINE`, else 4 hours).

    Returns:
        The local folder, as a string.

    Raises:
        HandleNotFoundError: the path does not exist, or the server says 404.
        HandleError: a malformed handle (no host, spaces, non-ASCII...).
        UnsupportedSchemeError: no resolver knows the URL scheme.
        CacheError: the cache folder is unusable (e.g. it is a file).
        OfflineError: offline mode is on and the handle is not cached.
        DownloadError: a network fault or a bad archive (nothing is cached).

    Example:

    ```python
    path = hk.resolve("https://tfhub.dev/google/nnlm-en-dim50/2")
    ```
    """
    if isinstance(handle, os.PathLike):
        handle = os.fspath(handle)
    if not isinstance(handle, str) or not handle:
        raise errors.HandleError(
            "Expected a non-empty path or URL string. Received: "
            f"handle={redact(handle)!r} of type {type(handle).__name__}. "
            "Pass a folder path or an http(s):// URL."
        )
    options = _Options(
        cache=ModelCache(cache_dir),
        offline=constants.env_flag(constants.OFFLINE_ENV)
        if offline is None
        else bool(offline),
        progress=progress_enabled(progress),
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_retries=max_retries,
        max_bytes=max_bytes,
        max_members=max_members,
        deadline=constants.env_seconds(
            constants.DOWNLOAD_DEADLINE_ENV, constants.DOWNLOAD_DEADLINE
        )
        if deadline is None
        else deadline,
    )
    for resolver in _RESOLVERS:
        if resolver.is_supported(handle):
            return resolver(handle, options)
    raise errors.UnsupportedSchemeError(
        f"No resolver supports the handle {redact(handle)!r} (scheme "
        f"{_scheme(handle)!r}). Supported: local paths, file://, "
        f"http://, https:// and the tf.io.gfile schemes {_gfile_schemes()}."
    )


class PathResolver:
    """Local paths and `file://` URLs, returned as they are."""

    def is_supported(self, handle):
        return _scheme(handle) in ("", "file")

    def __call__(self, handle, options):
        path = handle
        if handle.startswith("file://"):
            path = urllib.parse.unquote(urllib.parse.urlsplit(handle).path)
        path = os.path.expanduser(path)
        if not os.path.exists(path):
            raise errors.HandleNotFoundError(
                f"Expected an existing SavedModel folder. Received: "
                f"handle={redact(handle)!r}, which does not exist. Check "
                "the path, or use an http(s):// URL."
            )
        return path


class HttpResolver:
    """`http(s)://` handles served per the TF Hub hosting protocol."""

    def is_supported(self, handle):
        return _scheme(handle) in ("http", "https")

    def __call__(self, handle, options):
        _http.check_url(handle)
        return _through_cache(handle, options, self._fill)

    def _fill(self, handle, options, tmp):
        url = compressed_url(without_masks(handle))
        with _http.open_url(
            url,
            connect_timeout=options.connect_timeout,
            read_timeout=options.read_timeout,
            retries=options.max_retries,
            backoff=constants.BACKOFF_SECONDS,
            deadline=options.deadline,
        ) as stream:
            _extract_with_progress(stream, tmp, handle, options, stream.length)


class GfileResolver:
    """`gs://` and other `tf.io.gfile` filesystems."""

    def is_supported(self, handle):
        scheme = _scheme(handle)
        return scheme not in ("", "file", "http", "https") and (
            scheme in _gfile_schemes()
        )

    def __call__(self, handle, options):
        import tensorflow as tf

        if not handle.endswith(_ARCHIVE_SUFFIXES):
            if not tf.io.gfile.exists(handle):
                raise errors.HandleNotFoundError(
                    f"{redact(handle)!r} does not exist."
                )
            return handle
        return _through_cache(handle, options, self._fill)

    def _fill(self, handle, options, tmp):
        import tensorflow as tf

        with tf.io.gfile.GFile(handle, "rb") as stream:
            _extract_with_progress(stream, tmp, handle, options, stream.size())


_RESOLVERS = [HttpResolver(), GfileResolver(), PathResolver()]


def compressed_url(handle: str) -> str:
    """`handle` with `tf-hub-format=compressed` added to its query."""
    parts = urllib.parse.urlsplit(handle)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if ("tf-hub-format", "compressed") not in query:
        query.append(("tf-hub-format", "compressed"))
    return urllib.parse.urlunsplit(
        parts._replace(query=urllib.parse.urlencode(query), fragment="")
    )


def _through_cache(handle, options, fill):
    cache = options.cache
    hit = cache.lookup(handle)
    if hit:
        return hit
    if options.offline:
        raise errors.OfflineError(
            f"Offline mode is on and {redact(handle)!r} is not in the cache "
            f"({cache.cache_dir}). Run once online, copy a cache there "
            f"(TFHUB_CACHE_DIR), or unset {constants.OFFLINE_ENV}."
        )
    with cache.lock(handle):
        hit = cache.lookup(handle)  # Another process may have finished it.
        if hit:
            return hit
        logger.info("Downloading %s", redact(handle))
        return cache.install(handle, lambda tmp: fill(handle, options, tmp))


def _extract_with_progress(stream, tmp, handle, options, total):
    progress = ByteProgress(
        f"Downloading {redact(handle)}", total, enabled=options.progress
    )
    try:
        _archive.extract(
            stream,
            tmp,
            source=redact(handle),
            max_bytes=options.max_bytes,
            max_members=options.max_members,
            on_bytes=progress.update,
        )
    finally:
        progress.close()


def _scheme(handle):
    if "://" not in handle:
        return ""
    return handle.split("://", 1)[0].lower()


def _gfile_schemes():
    try:
        import tensorflow as tf

        return sorted(s for s in tf.io.gfile.get_registered_schemes() if s)
    except (ImportError, AttributeError):
        return []
