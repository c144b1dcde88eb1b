"""Streams a (gzip'd) tar archive into a folder, refusing anything unsafe.

Only regular files and folders are written, with modes we choose, under
names that stay inside the destination; links, devices, absolute paths,
`..`, duplicates and archives past the size or member bounds are refused
(CVE-2007-4559 and its later bypasses all go through links or names).
The gzip trailer (CRC and length) is checked, so a truncated or corrupt
archive is an error, never a cache entry.

Every bound holds before bytes are buffered. `tarfile` reads an extension
header (a pax header, a GNU long name or long link) into memory whole, and
follows GNU sparse maps for as long as they go on; `_BoundedTarInfo` checks
the size a header announces against `constants.MAX_TAR_HEADER_BYTES` (and
all headers together, and how many may chain before one member) before
`tarfile` reads it, and refuses sparse members outright.
"""

import gzip
import os
import posixpath
import tarfile
import zlib

from keras_hubkit import constants
from keras_hubkit import errors

_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


def extract(stream, dest, *, source, max_bytes, max_members, on_bytes=None):
    """Extracts the tar archive read from `stream` into the folder `dest`.

    Args:
        stream: a binary file object (an HTTP response, a GFile...).
        dest: an existing, empty folder.
        source: the (redacted) handle, for error messages.
        max_bytes: the most bytes the extracted files may hold in all.
        max_members: the most members the archive may have.
        on_bytes: called with each chunk's size of compressed input read.
    """
    counted = _Counting(stream, on_bytes)
    head = counted.peek(512)
    _check_looks_like_archive(head, source)
    raw = gzip.GzipFile(fileobj=counted) if head[:2] == _GZIP_MAGIC else counted
    try:
        with _BoundedTarFile.open(
            fileobj=raw, mode="r|*", source=source
        ) as archive:
            _extract_members(archive, dest, source, max_bytes, max_members)
        # Read to the end so GzipFile checks the CRC and length trailer.
        _drain_trailer(raw, source)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise errors.DownloadError(
            f"{source!r} is not a complete model archive: {e}. The download "
            "was truncated or corrupted; nothing was cached. Retry, and check "
            "that the URL serves a .tar.gz of a SavedModel."
        ) from e


def _check_looks_like_archive(head, source):
    stripped = head.lstrip().lower()
    if stripped.startswith((b"<!doctype", b"<html", b"<?xml", b"{")):
        raise errors.DownloadError(
            f"{source!r} returned a web page (or JSON), not a model archive. "
            "A proxy, login page or wrong URL is the usual cause. Expected a "
            ".tar.gz served per the TF Hub hosting protocol."
        )
    is_gzip = head[:2] == _GZIP_MAGIC
    is_tar = head[257:262] == b"ustar"
    is_other = head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00"
    if not (is_gzip or is_tar or is_other):
        raise errors.DownloadError(
            f"{source!r} did not return a tar archive (first bytes: "
            f"{head[:16]!r}). Expected a .tar.gz of a SavedModel."
        )


def _extract_members(archive, dest, source, max_bytes, max_members):
    seen = set()
    total = 0
    for count, member in enumerate(archive, start=1):
        if count > max_members:
            raise errors.UnsafeArchiveError(
                f"{source!r} has more than {max_members} members. Refusing it "
                "(a tar bomb?). Raise `max_members` if the model is genuine."
            )
        name = safe_member_name(member.name, source)
        if name is None:
            continue  # The archive root itself ("." or "./").
        if name in seen:
            raise errors.UnsafeArchiveError(
                f"{source!r} holds {member.name!r} twice. Refusing an archive "
                "whose later members could overwrite earlier ones."
            )
        seen.add(name)
        target = os.path.join(dest, *name.split("/"))
        if member.isdir():
            os.makedirs(target, mode=0o755, exist_ok=True)
            continue
        if not member.isfile() or member.sparse is not None:
            raise errors.UnsafeArchiveError(
                f"{source!r} holds {member.name!r}, a "
                f"{_kind(member)}. Model archives hold only files and "
                "folders; refusing it."
            )
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        total = _copy_file(archive, member, target, total, max_bytes, source)


def _copy_file(archive, member, target, total, max_bytes, source):
    if total + member.size > max_bytes:
        raise _too_big(source, max_bytes)
    data = archive.extractfile(member)
    # "xb": never follow or replace something already there.
    with open(target, "xb") as out:
        while chunk := data.read(_CHUNK):
            total += len(chunk)
            if total > max_bytes:
                raise _too_big(source, max_bytes)
            out.write(chunk)
    os.chmod(target, 0o644)
    return total


def safe_member_name(name, source):
    """The normalized relative name of a member, or None for the root.

    Raises `UnsafeArchiveError` for absolute names, `..`, or NUL bytes.
    """
    if "\x00" in name or "\\" in name:
        raise errors.UnsafeArchiveError(
            f"{source!r} holds a member with an invalid name {name!r}."
        )
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise errors.UnsafeArchiveError(
            f"{source!r} holds {name!r}, an absolute path. Refusing it: "
            "members must stay inside the model folder."
        )
    normalized = posixpath.normpath(name)
    if normalized == ".":
        return None
    if normalized.startswith("..") or "/../" in f"/{normalized}/":
        raise errors.UnsafeArchiveError(
            f"{source!r} holds {name!r}, which points outside the model "
            "folder ('..'). Refusing it."
        )
    return normalized


def _kind(member):
    if member.sparse is not None:
        return "sparse file"
    if member.issym():
        return f"symbolic link to {member.linkname!r}"
    if member.islnk():
        return f"hard link to {member.linkname!r}"
    if member.isfifo():
        return "FIFO"
    if member.isdev():
        return "device file"
    return f"member of type {member.type!r}"


def _too_big(source, max_bytes):
    return errors.UnsafeArchiveError(
        f"{source!r} unpacks to more than {max_bytes} bytes. Refusing it "
        "(a decompression bomb?). Raise `max_bytes` if the model is genuine."
    )


class _Counting:
    """A read-only stream wrapper that counts bytes and can peek."""

    def __init__(self, stream, on_bytes):
        self._stream = stream
        self._on_bytes = on_bytes
        self._buffer = b""

    def peek(self, n):
        while len(self._buffer) < n:
            chunk = self._stream.read(n - len(self._buffer))
            if not chunk:
                break
            self._buffer += chunk
            if self._on_bytes:
                self._on_bytes(len(chunk))
        return self._buffer[:n]

    def read(self, n=-1):
        if self._buffer:
            if n is None or n < 0:
                out, self._buffer = self._buffer, b""
                return out
            out, self._buffer = self._buffer[:n], self._buffer[n:]
            return out
        return self._read(n)

    def _read(self, n):
        # Never read a whole stream at once: `read()` means one chunk.
        chunk = self._stream.read(n if n >= 0 else _CHUNK)
        if chunk and self._on_bytes:
            self._on_bytes(len(chunk))
        return chunk


def _drain_trailer(raw, source):
    """Reads past the tar end marker (to the gzip trailer), boundedly."""
    left = constants.MAX_TAR_TRAILER_BYTES
    while chunk := raw.read(_CHUNK):
        left -= len(chunk)
        if left < 0:
            raise errors.UnsafeArchiveError(
                f"Expected at most {constants.MAX_TAR_TRAILER_BYTES} bytes of "
                f"padding after the end of the tar archive. Received: "
                f"{source!r} goes on past that. Refusing it (data hidden "
                "after the archive, or a decompression bomb)."
            )


_EXTENSION_TYPES = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)


class _BoundedTarInfo(tarfile.TarInfo):
    """A `TarInfo` that refuses oversized headers before they are read.

    `_proc_member` is `tarfile`'s (private, stable since Python 2.6) step
    that reads whatever follows a header block; overriding it is the only
    place where the announced size is known and nothing has been read yet.
    """

    def _proc_member(self, tarfile_):
        if self.type in _EXTENSION_TYPES:
            tarfile_.check_extension_header(self)
        elif self.type == tarfile.GNUTYPE_SPARSE:
            raise tarfile_.refuse_sparse(self)
        else:
            tarfile_.header_chain = 0
        return super()._proc_member(tarfile_)

    def _proc_gnusparse_10(self, next, pax_headers, tarfile_):
        # GNU sparse 1.0 reads its map, of any length, from the data.
        raise tarfile_.refuse_sparse(next)


class _BoundedTarFile(tarfile.TarFile):
    """Keeps the extension-header budget of one archive."""

    tarinfo = _BoundedTarInfo

    def __init__(self, *args, source="the archive", **kwargs):
        self.source = source
        self.header_bytes = 0
        self.header_chain = 0
        super().__init__(*args, **kwargs)

    def check_extension_header(self, info):
        size = info.size
        self.header_chain += 1
        self.header_bytes += max(size, 0)
        if size > constants.MAX_TAR_HEADER_BYTES:
            raise self._refuse(
                f"extension headers (pax records, GNU long names) of at most "
                f"{constants.MAX_TAR_HEADER_BYTES} bytes",
                f"one of {size} bytes",
            )
        if self.header_bytes > constants.MAX_TAR_HEADERS_TOTAL_BYTES:
            raise self._refuse(
                f"at most {constants.MAX_TAR_HEADERS_TOTAL_BYTES} bytes of "
                "extension headers in all",
                f"{self.header_bytes} bytes so far",
            )
        if self.header_chain > constants.MAX_TAR_HEADER_CHAIN:
            raise self._refuse(
                f"at most {constants.MAX_TAR_HEADER_CHAIN} extension headers "
                "before one member",
                "a longer chain",
            )

    def refuse_sparse(self, info):
        return self._refuse(
            "regular files, not sparse files",
            f"{info.name!r}, a GNU sparse file",
        )

    def _refuse(self, expected, received):
        return errors.UnsafeArchiveError(
            f"Expected {expected}. Received: {self.source!r} has {received}. "
            "Refusing the archive before reading it into memory; a model "
            "archive needs no such thing."
        )
