"""The folder TensorFlow loads: one whose graph is the one that was scanned.

`tf.saved_model.load` reads `saved_model.pb` again, and the model folder's
file could be replaced between the scan and that read. So a local model is
loaded through a folder of this process's own (`mkdtemp`: mode 0700, in
`TMPDIR`) holding the scanned bytes as `saved_model.pb`, with links to the
entries TensorFlow's loader reads beside it: variables, assets, the
fingerprint and the debug info, which it reads as data and never runs.

A copy is kept for the whole process (restored assets point into it) and
reused while the graph and the linked entries are the same, after checking
that it is still the one this process made (owner, inode, links): a copy a
temp cleaner removed, or another user made again under the same name, is
made afresh. It is removed at exit by the process that made it (not by a
forked child). If the copy cannot be made, the load fails with a
`CacheError`, never falls back to the folder itself; only where this
system cannot make links at all (Windows without developer mode, a
filesystem without links) is the folder loaded in place.
"""

import atexit
import collections
import errno
import logging
import os
import shutil
import stat
import tempfile

from keras_hubkit import errors

logger = logging.getLogger(__name__)

# What the loader reads beside the graph (loader_impl, fingerprinting).
LINKED = ("variables", "assets", "fingerprint.pb", "debug")

_Copy = collections.namedtuple("_Copy", "folder stamp")
_COPIES = {}  # (folder, the graph's digest, linked names) -> _Copy
_NO_LINKS = {errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}
_WINDOWS_NO_PRIVILEGE = 1314  # ERROR_PRIVILEGE_NOT_HELD


def scanned_folder(path, graph, digest):
    """The folder to hand `tf.saved_model.load` for the model at `path`.

    Args:
        path: the model folder (local, or on another TF filesystem).
        graph: the scanned `saved_model.pb` bytes.
        digest: a name for `graph` (the scan's fingerprint).

    Raises:
        CacheError: the private copy cannot be made (a full or missing
            temporary folder, a path too long to link to).
    """
    if not os.path.isdir(path):
        return path  # gs:// and other TensorFlow filesystems: in place
    path = os.path.abspath(path)
    names = tuple(n for n in LINKED if os.path.lexists(os.path.join(path, n)))
    key = (path, digest, names)
    copy = _COPIES.get(key)
    if copy is not None and _stamp(copy.folder, names) == copy.stamp:
        return copy.folder
    try:
        folder = _make(path, graph, names)
    except _NoLinks as e:
        logger.debug("Loading %s in place: no links here (%s).", path, e)
        return path
    except OSError as e:
        raise errors.CacheError(
            "Expected to write a private copy of the scanned graph for "
            f"TensorFlow to load, in {tempfile.gettempdir()!r}. Received: "
            f"{e}. Free space there or set TMPDIR to a writable folder "
            "(and load from a shorter path if the error is about its length)."
        ) from e
    _COPIES[key] = _Copy(folder, _stamp(folder, names))
    return folder


class _NoLinks(Exception):
    """This system makes no links at all (not: this link failed)."""


def _make(path, graph, names):
    folder = tempfile.mkdtemp(prefix="hubkit-load-")
    try:
        with open(os.path.join(folder, "saved_model.pb"), "wb") as f:
            f.write(graph)
        for name in names:
            try:
                os.symlink(os.path.join(path, name), os.path.join(folder, name))
            except OSError as e:
                if _links_unsupported(e):
                    raise _NoLinks(e) from e
                raise
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    atexit.register(_remove, folder, os.getpid())
    return folder


def _stamp(folder, names):
    """What identifies a copy: the folder's and graph's owner and inode,
    the graph's size and time, and each link's target; None if any is
    gone or not what was made."""
    try:
        top = os.lstat(folder)
        graph = os.lstat(os.path.join(folder, "saved_model.pb"))
        links = tuple(os.readlink(os.path.join(folder, n)) for n in names)
    except OSError:
        return None
    if not stat.S_ISDIR(top.st_mode) or not stat.S_ISREG(graph.st_mode):
        return None
    return (
        (top.st_dev, top.st_ino, top.st_uid),
        (graph.st_ino, graph.st_uid, graph.st_size, graph.st_mtime_ns),
        links,
    )


def _links_unsupported(error):
    return (
        getattr(error, "winerror", None) == _WINDOWS_NO_PRIVILEGE
        or error.errno in _NO_LINKS
    )


def _remove(folder, pid):
    if os.getpid() == pid:  # a forked child's exit leaves it to its parent
        shutil.rmtree(folder, ignore_errors=True)
