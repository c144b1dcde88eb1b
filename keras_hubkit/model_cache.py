"""`ModelCache`: the on-disk cache of downloaded models.

The layout is tensorflow_hub's, so an existing `TFHUB_CACHE_DIR` is reused
as it is:

```
<cache>/<sha1(handle)>/                 the SavedModel (saved_model.pb, ...)
<cache>/<sha1(handle)>.descriptor.txt   "Module: <handle>" and when/who
<cache>/<sha1(handle)>.lock             held (flock) while downloading
<cache>/<sha1(handle)>.<random>.tmp/    one download in progress
```
"""

import contextlib
import datetime
import fcntl
import hashlib
import logging
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass

from keras_hubkit import constants
from keras_hubkit import errors
from keras_hubkit._redact import redact
from keras_hubkit._redact import strip_credentials
from keras_hubkit._savedmodel import SAVED_MODEL_FILES

logger = logging.getLogger(__name__)

_SHA1 = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class CacheEntry:
    """One cached model: its handle, folder, size and validity."""

    handle: str
    path: str
    size_bytes: int
    valid: bool


class ModelCache:
    """The folder where downloaded models are kept, one folder per handle.

    Args:
        cache_dir: the folder. Defaults to `TFHUB_CACHE_DIR` when set (the
            same layout as `tensorflow_hub`, so its cache is reused), else a
            per-user folder (`$XDG_CACHE_HOME/keras_hubkit/tfhub_modules`,
            or `~/.cache/...`), never the system temp dir, which cleaners
            empty.

    Example:

    ```python
    cache = hk.ModelCache()
    for entry in cache.entries():
        print(entry.handle, entry.size_bytes)
    cache.remove("https://tfhub.dev/google/some/model/1")
    ```
    """

    def __init__(self, cache_dir=None):
        self.cache_dir = os.path.abspath(
            os.path.expanduser(os.fspath(cache_dir or default_cache_dir()))
        )

    # -------------------------------------------------------------- layout
    def path_for(self, handle: str) -> str:
        """The folder that holds (or will hold) `handle`'s model.

        The name is the SHA-1 of the handle without its credentials
        (`strip_credentials`), which is `tensorflow_hub`'s name for every
        handle that has none; so a handle restored without its credentials
        finds the model it downloaded.
        """
        key = hashlib.sha1(strip_credentials(handle).encode("utf8"))
        return os.path.join(self.cache_dir, key.hexdigest())

    def ensure_folder(self) -> None:
        """Creates the cache folder if needed.

        Raises:
            CacheError: the path is a file, or cannot be created.
        """
        try:
            os.makedirs(self.cache_dir, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise errors.CacheError(
                "Expected the model cache to be a folder. Received: "
                f"cache_dir={self.cache_dir!r}, which is a file (or lies "
                f"under one). Point {constants.CACHE_DIR_ENV} (or cache_dir) "
                "at a folder, or remove that file."
            ) from None
        except OSError as e:
            raise errors.CacheError(
                "Expected a model cache folder that can be created. Received: "
                f"cache_dir={self.cache_dir!r}: {e.strerror}. Point "
                f"{constants.CACHE_DIR_ENV} (or cache_dir) at a writable "
                "folder."
            ) from None

    def lookup(self, handle: str):
        """The folder of a complete cached model, or None. Never raises."""
        path = self.path_for(handle)
        try:
            return path if is_complete_saved_model(path) else None
        except OSError:
            return None

    # -------------------------------------------------------------- writes
    @contextlib.contextmanager
    def lock(self, handle: str, timeout: float | None = None):
        """Holds the download lock of `handle` (an exclusive `flock`).

        The kernel drops a `flock` when its holder dies, however it dies, so
        a lock left by a killed process is taken over at the next poll (every
        `constants.LOCK_POLL_SECONDS`). A live holder is waited for, up to
        `timeout` seconds (default: forever; a live download ends by itself
        through its network timeouts).
        """
        self.ensure_folder()
        lock_path = self.path_for(handle) + ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise errors.CacheError(
                "Expected a writable model cache to download into. "
                f"Received: cache_dir={self.cache_dir!r}: {e.strerror}. "
                f"Point {constants.CACHE_DIR_ENV} (or cache_dir) at a "
                "writable folder."
            ) from None
        deadline = None if timeout is None else time.monotonic() + timeout
        waited = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if deadline is not None and time.monotonic() > deadline:
                        raise errors.CacheError(
                            f"Timed out after {timeout}s waiting for another "
                            f"process to download {redact(handle)!r} "
                            f"(lock {lock_path}). Retry later, or remove "
                            "the lock file if no such process exists."
                        ) from None
                    if not waited:
                        logger.info(
                            "Waiting for another process to download %s.",
                            redact(handle),
                        )
                        waited = True
                    time.sleep(constants.LOCK_POLL_SECONDS)
            os.ftruncate(fd, 0)
            os.write(fd, f"{socket.gethostname()} pid={os.getpid()}".encode())
            yield
        finally:
            # The lock file itself stays: deleting it would let a waiter lock
            # a file that a newcomer no longer sees.
            os.close(fd)

    def install(self, handle: str, fill) -> str:
        """Downloads `handle` once, atomically, and returns its folder.

        Call with the lock held. `fill(tmp_dir)` writes the model into a
        fresh temporary folder; only a complete model is renamed into place.
        Leftovers of killed downloads and an incomplete entry are removed.

        Args:
            handle: the handle (its SHA-1 names the folder).
            fill: a function that writes the model into the folder it gets.

        Returns:
            The entry's folder.
        """
        entry = self.path_for(handle)
        if is_complete_saved_model(entry):
            return entry
        self._remove_leftovers(entry)
        if os.path.lexists(entry):
            logger.warning(
                "Replacing the incomplete cache entry %s of %s.",
                entry,
                redact(handle),
            )
            _remove_tree(entry)
        tmp = tempfile.mkdtemp(
            prefix=os.path.basename(entry) + ".",
            suffix=".tmp",
            dir=self.cache_dir,
        )
        try:
            fill(tmp)
            root = _model_root(tmp)
            if root is None:
                raise errors.DownloadError(
                    f"The archive of {redact(handle)!r} holds no "
                    f"saved_model.pb. Received files: {_listing(tmp)}. "
                    "Check that the URL serves a TF2 SavedModel archive."
                )
            check_complete(root, handle)
            # Parse the graph and the variables index before caching: a
            # damaged archive must not become a cache entry.
            from keras_hubkit import _validate

            _validate.check_saved_model_dir(root, handle)
            _write_descriptor(entry, handle)
            os.replace(root, entry)
        finally:
            _remove_tree(tmp)
        return entry

    def _remove_leftovers(self, entry: str) -> None:
        prefix = os.path.basename(entry) + "."
        for name in os.listdir(self.cache_dir):
            if name.startswith(prefix) and name.endswith((".tmp", ".deleting")):
                logger.info("Removing a leftover download: %s", name)
                _remove_tree(os.path.join(self.cache_dir, name))

    # --------------------------------------------------------- inspection
    def entries(self) -> list[CacheEntry]:
        """Every cached model, with its handle (as recorded), size, and
        whether it is complete."""
        if not os.path.lexists(self.cache_dir):
            return []
        if not os.path.isdir(self.cache_dir):
            self.ensure_folder()  # raises the CacheError that explains it
        found = []
        for name in sorted(os.listdir(self.cache_dir)):
            path = os.path.join(self.cache_dir, name)
            if _SHA1.match(name) and os.path.isdir(path):
                found.append(
                    CacheEntry(
                        handle=_read_handle(path),
                        path=path,
                        size_bytes=_tree_size(path),
                        valid=is_complete_saved_model(path),
                    )
                )
        return found

    def remove(self, handle: str) -> bool:
        """Removes one handle's model; returns whether anything was there."""
        entry = self.path_for(handle)
        existed = os.path.lexists(entry)
        with self.lock(handle):
            _remove_tree(entry)
            with contextlib.suppress(FileNotFoundError):
                os.remove(entry + ".descriptor.txt")
        return existed

    def clear(self) -> int:
        """Removes every cached model; returns how many were removed."""
        removed = 0
        for entry in self.entries():
            _remove_tree(entry.path)
            with contextlib.suppress(FileNotFoundError):
                os.remove(entry.path + ".descriptor.txt")
            removed += 1
        return removed


def default_cache_dir() -> str:
    """`TFHUB_CACHE_DIR` if set, else a per-user cache folder."""
    configured = os.environ.get(constants.CACHE_DIR_ENV, "").strip()
    if configured:
        return configured
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return os.path.join(base, "keras_hubkit", "tfhub_modules")


def is_complete_saved_model(path: str) -> bool:
    """Whether `path` holds a SavedModel with everything it needs."""
    try:
        check_complete(path, path)
        return True
    except (errors.HubkitError, OSError):
        return False


def check_complete(path: str, handle) -> None:
    """Raises `IncompleteModelError` unless `path` has every SavedModel
    file.

    A folder that merely exists is not enough (OS temp cleaners delete the
    files and keep the folders): the graph must be there and, when the model
    has variables, the index and every data shard it names.
    """
    graph = [os.path.join(path, n) for n in SAVED_MODEL_FILES]
    if not any(os.path.isfile(g) and os.path.getsize(g) > 0 for g in graph):
        raise errors.IncompleteModelError(
            "Expected a non-empty saved_model.pb. Received: "
            f"handle={redact(handle)!r}, whose folder {path!r} has none. "
            "Check that the handle names a TF2 SavedModel."
        )
    variables = os.path.join(path, "variables")
    if not os.path.isdir(variables):
        return
    names = set(os.listdir(variables))
    shards = [n for n in names if n.startswith("variables.data-")]
    if not names:
        return  # A model without variables may keep an empty folder.
    if "variables.index" not in names:
        raise errors.IncompleteModelError(
            "Expected variables/variables.index beside the data shards. "
            f"Received: handle={redact(handle)!r}, whose folder {path!r} "
            "has none. The files are incomplete: download the model again."
        )
    expected = expected_shard_names(shards)
    if expected is None or not expected <= names:
        raise errors.IncompleteModelError(
            "Expected every variables data shard. Received: "
            f"handle={redact(handle)!r}, whose folder {variables!r} holds "
            f"only {sorted(shards)}. The files are incomplete: download the "
            "model again."
        )


def expected_shard_names(shards):
    """The shard names `variables.data-*-of-N` implies, or None."""
    if not shards:
        return None
    match = re.match(r"variables\.data-\d+-of-(\d+)$", shards[0])
    if not match:
        return None
    total = int(match.group(1))
    width = len(match.group(1))
    return {
        f"variables.data-{i:0{width}d}-of-{total:0{width}d}"
        for i in range(total)
    }


def _model_root(tmp: str):
    if is_complete_saved_model(tmp) or os.path.exists(
        os.path.join(tmp, "saved_model.pb")
    ):
        return tmp
    # Some servers wrap the model in one top-level folder.
    children = os.listdir(tmp)
    if len(children) == 1:
        child = os.path.join(tmp, children[0])
        if os.path.isdir(child) and os.path.exists(
            os.path.join(child, "saved_model.pb")
        ):
            return child
    return None


def _write_descriptor(entry: str, handle: str) -> None:
    text = (
        f"Module: {redact(handle)}\n"
        f"Download Time: {datetime.datetime.now()}\n"
        f"Downloader Hostname: {socket.gethostname()} (PID:{os.getpid()})\n"
    )
    tmp = f"{entry}.descriptor.txt.tmp{uuid.uuid4().hex}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, entry + ".descriptor.txt")


def _read_handle(entry: str) -> str:
    try:
        with open(entry + ".descriptor.txt") as f:
            for line in f:
                if line.startswith("Module: "):
                    return line[len("Module: ") :].strip()
    except OSError:
        pass
    return "(unknown handle)"


def _tree_size(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, name))
    return total


def _listing(path: str, limit: int = 10):
    names = []
    for root, _, files in os.walk(path):
        names += [os.path.relpath(os.path.join(root, f), path) for f in files]
    return sorted(names)[:limit]


def _remove_tree(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        # Rename first: a half-deleted folder must never look like an entry.
        doomed = f"{path}.{uuid.uuid4().hex}.deleting"
        try:
            os.replace(path, doomed)
        except OSError:
            doomed = path
        shutil.rmtree(doomed, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)
