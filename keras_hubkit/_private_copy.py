"""The folder TensorFlow loads: one whose graph is the one that was scanned.

`tf.saved_model.load` reads `saved_model.pb` again, and the model folder's
file could be replaced between the scan and that read. So a local model is
loaded through a folder of this process's own (`mkdtemp`: mode 0700, in
`TMPDIR`) holding the scanned bytes as `saved_model.pb`, with links to the
entries TensorFlow's loader reads beside it: variables, the fingerprint
and the debug info, which it reads as data and never runs. Assets are
copied (`_copy_assets`), following no link out of `assets/`, so a file
there swapped for a link to someone's secret after the scan is never read
as the model's vocabulary or carried into a re-export.

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

# What the loader reads beside the graph (loader_impl, fingerprinting):
# assets are copied, the rest linked.
_BESIDE_GRAPH = ("variables", "assets", "fingerprint.pb", "debug")

_Copy = collections.namedtuple("_Copy", "folder stamp")
_COPIES = {}  # (folder, the graph's digest, names beside it) -> _Copy
_NO_LINKS = {errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}
_WINDOWS_NO_PRIVILEGE = 1314  # ERROR_PRIVILEGE_NOT_HELD
# Copying assets without following links needs fwalk and O_NOFOLLOW (not
# on Windows, where assets are linked like the rest).
_CAN_COPY_SAFELY = all(
    hasattr(os, name) for name in ("fwalk", "O_NOFOLLOW", "O_DIRECTORY")
)


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
    names = tuple(
        n for n in _BESIDE_GRAPH if os.path.lexists(os.path.join(path, n))
    )
    key = (path, digest, names)
    copy = _COPIES.get(key)
    if copy is not None and copy.stamp == _stamp(copy.folder, names):
        return copy.folder
    try:
        folder = _make(path, graph, names)
    except _NoLinks as e:
        logger.debug("Loading %s in place: no links here (%s).", path, e)
        return path
    except errors.HubkitError:
        raise  # an UnsafeModelError is an OSError too
    except OSError as e:
        raise errors.CacheError(
            "Expected to write a private copy of the scanned graph for "
            f"TensorFlow to load, in {tempfile.gettempdir()!r}. Received: "
            f"{e}. Free space there or set TMPDIR to a writable folder "
            "(and load from a shorter path if the error is about its length)."
        ) from e
    stamp = _stamp(folder, names)
    if stamp is not None:  # else made again at the next load
        _COPIES[key] = _Copy(folder, stamp)
    return folder


class _NoLinks(Exception):
    """This system makes no links at all (not: this link failed)."""


def _make(path, graph, names):
    folder = tempfile.mkdtemp(prefix="hubkit-load-")
    try:
        with open(os.path.join(folder, "saved_model.pb"), "wb") as f:
            f.write(graph)
        for name in names:
            if name == "assets" and _CAN_COPY_SAFELY:
                _copy_assets(path, os.path.join(folder, name))
                continue
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


def _copy_assets(path, dest):
    """Copies the model's `assets/` into the copy, following no link out of
    it, so what TensorFlow reads (and a re-export copies) cannot be
    swapped afterwards: regular files are copied, opened without following
    links; folders are made; a link is made again only when it provably
    stays inside `assets/` (`_stays_inside`), where it points at the copy's
    own files. Anything else (a link out, a device, a pipe) is refused.
    """
    os.mkdir(dest, 0o700)
    root = _open_assets(path)
    try:
        _copy_tree(root, dest)
    finally:
        os.close(root)


def _open_assets(path):
    """A descriptor of the model's assets folder, which must not be a link
    (the scan refuses one; it can only be a link made since)."""
    try:
        return os.open(
            os.path.join(path, "assets"),
            os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
        )
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _unsafe_asset("assets", "a link or not a folder") from None
        raise


def _copy_tree(root, dest):
    walk = os.fwalk(".", follow_symlinks=False, dir_fd=root)
    for folder, dirs, files, fd in walk:
        rel = os.path.relpath(folder, ".")
        here = os.path.normpath(os.path.join(dest, rel))
        for name in dirs + files:
            shown = os.path.normpath(os.path.join("assets", rel, name))
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            target = os.path.join(here, name)
            if stat.S_ISLNK(info.st_mode):
                link = os.readlink(name, dir_fd=fd)
                if not _stays_inside(link, rel):
                    raise _unsafe_asset(shown, f"a link to {link!r}")
                os.symlink(link, target)
            elif stat.S_ISDIR(info.st_mode):
                os.mkdir(target, 0o700)
            else:
                _copy_file(name, fd, target, shown)


def _stays_inside(link, rel):
    """Whether a link in folder `rel` (under assets/) to `link` resolves
    inside assets/ whatever links it passes through: relative, with `..`
    parts only at its start and no more of them than the folder's depth. A
    `..` after another part is refused: that part may be a link, and `..`
    then steps out of wherever it led (`up/../x` with `up -> ..`)."""
    if os.path.isabs(link):
        return False
    parts = [p for p in link.split(os.sep) if p not in ("", os.curdir)]
    ups = 0
    while ups < len(parts) and parts[ups] == os.pardir:
        ups += 1
    depth = 0 if rel == os.curdir else len(rel.split(os.sep))
    return ups <= depth and os.pardir not in parts[ups:]


def _copy_file(name, dir_fd, target, shown):
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd
        )
    except OSError as e:
        if e.errno == errno.ELOOP:  # made a link since it was listed
            raise _unsafe_asset(shown, "a link") from None
        raise
    with os.fdopen(fd, "rb") as source:
        if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
            raise _unsafe_asset(shown, "not a regular file")
        with open(target, "xb") as out:
            shutil.copyfileobj(source, out, 1 << 20)


def _unsafe_asset(shown, received):
    return errors.UnsafeModelError(
        "Expected the model's assets to be files and folders inside its "
        f"assets/ folder. Received: {shown} is {received}, as TensorFlow "
        "was about to load it (it changed after the scan, or cannot be "
        "copied safely). Refusing the load: a link there would be read as "
        "the model's data. Check who else can write to the model's folder."
    )


def _stamp(folder, names):
    """What identifies a copy: the owner and inode of the folder, of the
    graph (with its size and time) and of the copied assets, and each
    link's target; None if any is gone or not what was made."""
    try:
        top = os.lstat(folder)
        graph = os.lstat(os.path.join(folder, "saved_model.pb"))
        entries = tuple(_entry(os.path.join(folder, n)) for n in names)
    except OSError:
        return None
    if not stat.S_ISDIR(top.st_mode) or not stat.S_ISREG(graph.st_mode):
        return None
    return (
        (top.st_dev, top.st_ino, top.st_uid),
        (graph.st_ino, graph.st_uid, graph.st_size, graph.st_mtime_ns),
        entries,
    )


def _entry(path):
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return ("link", os.readlink(path))
    return ("copy", info.st_ino, info.st_uid)


def _links_unsupported(error):
    return (
        getattr(error, "winerror", None) == _WINDOWS_NO_PRIVILEGE
        or error.errno in _NO_LINKS
    )


def _remove(folder, pid):
    if os.getpid() == pid:  # a forked child's exit leaves it to its parent
        shutil.rmtree(folder, ignore_errors=True)
