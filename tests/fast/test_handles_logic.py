"""Credential redaction and archive member checks (no TensorFlow)."""

import io
import tarfile

import pytest

from keras_hubkit import errors
from keras_hubkit._archive import extract
from keras_hubkit._archive import safe_member_name
from keras_hubkit._redact import redact


@pytest.mark.parametrize(
    "url, expected",
    [
        (
            "https://u:p@host/m?token=abc&x=1",
            "https://***@host/m?token=***&x=1",
        ),
        (
            "https://host/m?X-Amz-Signature=s&Expires=9",
            "https://host/m?X-Amz-Signature=***&Expires=9",
        ),
        ("https://host/m#frag", "https://host/m"),
        ("/local/path?token=1", "/local/path?token=1"),  # not a URL
    ],
)
def test_redact_hides_credentials(url, expected):
    assert redact(url) == expected


@pytest.mark.parametrize(
    "name, expected",
    [
        ("saved_model.pb", "saved_model.pb"),
        ("./variables/variables.index", "variables/variables.index"),
        ("a/./b/../c", "a/c"),
        (".", None),
        ("./", None),
    ],
)
def test_member_names_are_normalized(name, expected):
    assert safe_member_name(name, "src") == expected


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "../x", "a/../../x", "C:evil", "a\\b", "a\x00b"],
)
def test_member_names_that_escape_are_refused(name):
    with pytest.raises(errors.UnsafeArchiveError):
        safe_member_name(name, "src")


def _tar(*members):
    """A tar archive in memory; members are `(name, bytes or TarInfo)`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in members:
            if isinstance(content, tarfile.TarInfo):
                content.name = name
                archive.addfile(content)
                continue
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    buffer.seek(0)
    return buffer


def _extract(stream, dest, **limits):
    limits = {"max_bytes": 1 << 20, "max_members": 100, **limits}
    extract(stream, str(dest), source="https://h/m", **limits)


def test_a_plain_archive_extracts(tmp_path):
    _extract(_tar(("saved_model.pb", b"pb"), ("variables/v", b"12")), tmp_path)
    assert (tmp_path / "saved_model.pb").read_bytes() == b"pb"
    assert (tmp_path / "variables" / "v").read_bytes() == b"12"


def _link(target):
    info = tarfile.TarInfo()
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


@pytest.mark.parametrize(
    "members, limits, match",
    [
        ([("link", _link("/etc/passwd"))], {}, "symbolic link"),
        ([("a", b"1"), ("./a", b"2")], {}, "twice"),
        ([("a", b"1"), ("b", b"2")], {"max_members": 1}, "members"),
        ([("a", b"x" * 100)], {"max_bytes": 10}, "bytes"),
    ],
)
def test_hostile_archives_are_refused(tmp_path, members, limits, match):
    with pytest.raises(errors.UnsafeArchiveError, match=match):
        _extract(_tar(*members), tmp_path, **limits)


def test_a_web_page_is_not_an_archive(tmp_path):
    page = io.BytesIO(b"<!DOCTYPE html><html>login</html>" + b" " * 600)
    with pytest.raises(errors.DownloadError, match="web page"):
        _extract(page, tmp_path)
