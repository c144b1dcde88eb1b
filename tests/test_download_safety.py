"""Credentials, redirects, deadlines and archive headers, against servers on
127.0.0.1 (issue 13: secrets and bounded work)."""

import base64
import hashlib
import io
import logging
import os
import shutil
import tarfile
import time
import tracemalloc
import zlib

import pytest

import keras_hubkit as hk
from keras_hubkit import _http
from keras_hubkit import constants
from keras_hubkit import errors
from keras_hubkit._redact import redact
from keras_hubkit._redact import strip_credentials

from helpers import cache_is_clean
from helpers import fast_download
from http_server import Drip
from http_server import DripSocketServer
from http_server import Redirect
from http_server import ScriptedServer
from http_server import Serve
from http_server import Status
from http_server import self_signed_certificate

SECRETS = ("s3cret", "tok123", "alice")


def _with_credentials(base):
    return base.replace("://", "://alice:s3cret@", 1)


def _auth(request):
    return request[2].get("Authorization")


def _assert_no_secret(text):
    for secret in SECRETS:
        assert secret not in text, text


# ------------------------------------------------------------- credentials
def test_credentials_go_to_the_first_host_only(
    server, other_server, cache, model_archive, caplog
):
    blob = other_server.route("/blob.tar.gz", Serve(model_archive))
    server.route("/m", Redirect(blob, 302))
    url = f"{_with_credentials(server.base)}/m?token=tok123&v=1"
    with caplog.at_level(logging.DEBUG, logger="keras_hubkit"):
        path = hk.resolve(url, **fast_download())
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    (first,) = server.requests
    (second,) = other_server.requests
    expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert _auth(first) == expected
    assert "token=tok123" in first[1]
    assert _auth(second) is None  # another port is another origin
    assert "tok123" not in second[1]
    _assert_no_secret(caplog.text)


def test_credentials_follow_a_same_origin_redirect(
    server, cache, model_archive
):
    server.route("/real.tar.gz", Serve(model_archive))
    server.route("/m", Redirect("/real.tar.gz", 303))
    hk.resolve(f"{_with_credentials(server.base)}/m", **fast_download())
    assert [_auth(r) is not None for r in server.requests] == [True, True]


def test_credentials_from_the_environment_per_host(
    server, other_server, cache, model_archive, monkeypatch
):
    blob = other_server.route("/blob", Serve(model_archive))
    url = server.route("/m", Redirect(blob, 307))
    port = other_server.server_address[1]
    monkeypatch.setenv("HUBKIT_HTTP_AUTH", f"127.0.0.1:{port}=Bearer tok123")
    hk.resolve(url, **fast_download())
    assert _auth(server.requests[0]) is None  # not configured for that port
    assert _auth(other_server.requests[0]) == "Bearer tok123"


def test_reloading_a_stripped_handle_finds_the_entry(
    server, cache, model_archive, monkeypatch
):
    server.route("/private/m", Serve(model_archive))
    url = f"{_with_credentials(server.base)}/private/m?token=tok123"
    path = hk.resolve(url, **fast_download())
    stored = strip_credentials(url)
    _assert_no_secret(stored)
    assert stored == f"{server.base}/private/m"
    assert os.path.basename(path) == hashlib.sha1(stored.encode()).hexdigest()
    server.stop()  # any request would now fail
    monkeypatch.setenv("HUBKIT_OFFLINE", "1")
    assert hk.resolve(stored, **fast_download()) == path
    assert (
        hk.resolve(redact(url), **fast_download()) == path
    )  # a masked handle too


@pytest.mark.parametrize("clean", [strip_credentials, redact])
def test_a_stripped_handle_gets_credentials_from_the_environment(
    server, cache, model_archive, monkeypatch, clean
):
    server.route("/private/m", Serve(model_archive))
    monkeypatch.setenv(
        "HUBKIT_HTTP_AUTH", "example.org=bob:x; 127.0.0.1=alice:s3cret"
    )
    url = f"{_with_credentials(server.base)}/private/m?token=tok123&v=1"
    hk.resolve(clean(url), **fast_download())  # a masked `***` is no credential
    assert server.requests[0][1] == "v=1&tf-hub-format=compressed"
    expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert _auth(server.requests[0]) == expected


def test_401_says_how_to_supply_credentials(server, cache):
    url = server.route("/private", Status(401))
    with pytest.raises(errors.DownloadError, match="HUBKIT_HTTP_AUTH") as info:
        hk.resolve(f"{_with_credentials(url)}?token=tok123", **fast_download())
    _assert_no_secret(str(info.value))


def test_malformed_auth_variable_is_a_config_error(server, cache, monkeypatch):
    url = server.route("/m", Status(404))
    monkeypatch.setenv("HUBKIT_HTTP_AUTH", "no-equals-sign-s3cret")
    with pytest.raises(errors.ConfigError, match="HUBKIT_HTTP_AUTH") as info:
        hk.resolve(url, **fast_download())
    assert isinstance(info.value, ValueError)
    _assert_no_secret(str(info.value))
    assert server.requests == []


# --------------------------------------------------------------- redirects
@pytest.mark.parametrize(
    "location", ["ftp://127.0.0.1/model.tar.gz", "file:///etc/passwd"]
)
def test_only_http_redirects_are_followed(server, cache, location):
    url = server.route("/m", Redirect(location, 302))
    with pytest.raises(errors.DownloadError, match=r"http\(s\) URLs only"):
        hk.resolve(f"{_with_credentials(url)}?token=tok123", **fast_download())
    assert server.hits("/m") == 1  # refused, not retried
    assert cache_is_clean(cache)


def test_https_to_http_redirect_is_refused():
    with pytest.raises(errors.DownloadError, match="stay on https"):
        _http.check_redirect("src", "https://a/m", "http://a/m.tar.gz")
    _http.check_redirect("src", "http://a/m", "https://b/m.tar.gz")


def test_redirect_loop_is_bounded(server, cache):
    url = server.route("/loop", Redirect("/loop", 302))
    with pytest.raises(errors.DownloadError, match="redirected more than"):
        hk.resolve(url, **fast_download())
    assert server.hits("/loop") <= constants.MAX_REDIRECTS + 1


# --------------------------------------------------------------------- TLS
@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("the TLS tests make their certificate with `openssl`")
    return self_signed_certificate(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def tls_server(certificate):
    s = ScriptedServer(tls=certificate)
    yield s
    s.stop()


def test_https_with_a_trusted_certificate(
    tls_server, certificate, cache, model_archive, monkeypatch
):
    monkeypatch.setenv("SSL_CERT_FILE", certificate[0])
    tls_server.route("/m", Serve(model_archive))
    path = hk.resolve(
        f"{_with_credentials(tls_server.base)}/m", **fast_download()
    )
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    assert _auth(tls_server.requests[0]).startswith("Basic ")


def test_untrusted_certificate_is_refused_at_once(tls_server, cache):
    url = tls_server.route("/m", Status(404))
    with pytest.raises(errors.DownloadError, match="SSL_CERT_FILE") as info:
        hk.resolve(url, **fast_download(max_retries=3))
    assert "certificate" in str(info.value)
    assert tls_server.requests == []  # no request over an untrusted link
    assert cache_is_clean(cache)


def test_https_to_http_redirect_is_not_followed(
    tls_server, server, certificate, cache, model_archive, monkeypatch
):
    monkeypatch.setenv("SSL_CERT_FILE", certificate[0])
    plain = server.route("/m.tar.gz", Serve(model_archive))
    tls_server.route("/m", Redirect(plain, 302))
    with pytest.raises(errors.DownloadError, match="stay on https"):
        hk.resolve(f"{_with_credentials(tls_server.base)}/m", **fast_download())
    assert server.requests == []


def test_a_dripped_tls_handshake_hits_the_deadline(cache):
    drip = DripSocketServer(0.2)
    try:
        start = time.monotonic()
        with pytest.raises(errors.DownloadError, match="deadline of 1s"):
            hk.resolve(
                f"https://127.0.0.1:{drip.port}/m", **fast_download(deadline=1)
            )
        assert time.monotonic() - start < 5
    finally:
        drip.stop()


# ---------------------------------------------------------------- deadline
@pytest.mark.parametrize("in_headers", [False, True])
def test_a_dripping_server_hits_the_deadline(server, cache, in_headers):
    # One byte every 0.2 s: no read ever waits for the 2 s read timeout.
    url = server.route("/drip", Drip(0.2, in_headers=in_headers))
    start = time.monotonic()
    with pytest.raises(
        errors.DownloadError, match=r"deadline of 1\.5s"
    ) as info:
        hk.resolve(url, **fast_download(deadline=1.5))
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert (
        "deadline=SECONDS" in message and "HUBKIT_DOWNLOAD_DEADLINE" in message
    )
    assert server.hits("/drip") == 1  # the deadline is not retried
    assert cache_is_clean(cache)


def test_deadline_from_the_environment(server, cache, monkeypatch):
    url = server.route("/drip", Drip(0.2))
    monkeypatch.setenv("HUBKIT_DOWNLOAD_DEADLINE", "1")
    start = time.monotonic()
    with pytest.raises(errors.DownloadError, match="deadline of 1s"):
        hk.resolve(url, **fast_download())
    assert time.monotonic() - start < 5
    monkeypatch.setenv("HUBKIT_DOWNLOAD_DEADLINE", "soon")
    with pytest.raises(errors.ConfigError, match="HUBKIT_DOWNLOAD_DEADLINE"):
        hk.resolve(url, **fast_download())


# ------------------------------------------------------------ tar headers
def _gzip_stream(pieces):
    """gzip of the concatenated byte pieces, compressed piece by piece."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    out = io.BytesIO()
    for piece in pieces:
        out.write(compressor.compress(piece))
    out.write(compressor.flush())
    return out.getvalue()


def _header(name, type_, size, fmt=tarfile.USTAR_FORMAT):
    info = tarfile.TarInfo(name)
    info.type = type_
    info.size = size
    return info.tobuf(fmt)


def _padded(data):
    return data + b"\0" * (-len(data) % 512)


def _pax(records):
    out = b""
    for key, value in records.items():
        body = f" {key}={value}\n".encode()
        length = len(body) + len(str(len(body)))
        length = len(body) + len(str(length))
        out += str(length).encode() + body
    return out


def _file(name, data):
    return [_header(name, tarfile.REGTYPE, len(data)), _padded(data)]


_END = b"\0" * 1024


def _huge_extension(type_, size):
    """A header announcing `size` bytes, then those bytes (zeros), lazily."""
    yield _header("././@LongLink", type_, size)
    chunk = b"\0" * (1 << 20)
    left = size + (-size % 512)
    while left:
        yield chunk[: min(left, len(chunk))]
        left -= min(left, len(chunk))
    yield from _file("saved_model.pb", b"graph")
    yield _END


@pytest.mark.parametrize(
    "type_",
    [tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK],
)
def test_oversized_tar_header_is_refused_before_it_is_read(
    server, cache, type_
):
    size = 64 * 1024**2  # 64 MiB announced, and present in the stream
    body = _gzip_stream(_huge_extension(type_, size))
    assert len(body) < 1024**2
    url = server.route("/big-header", Serve(body))
    tracemalloc.start()
    try:
        with pytest.raises(errors.UnsafeArchiveError, match="extension"):
            hk.resolve(url, **fast_download())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024**2, peak  # never the 64 MiB header
    assert cache_is_clean(cache)


def test_extension_headers_are_bounded_in_all(server, cache, monkeypatch):
    monkeypatch.setattr(constants, "MAX_TAR_HEADERS_TOTAL_BYTES", 100_000)
    pieces = []
    for i in range(4):
        pax = _pax({"comment": "x" * 40_000})
        pieces += [_header("pax", tarfile.XHDTYPE, len(pax)), _padded(pax)]
        pieces += _file(f"f{i}", b"x")
    url = server.route("/many-headers", Serve(_gzip_stream([*pieces, _END])))
    with pytest.raises(errors.UnsafeArchiveError, match="in all"):
        hk.resolve(url, **fast_download())


def test_chained_extension_headers_are_bounded(server, cache):
    pieces = []
    for _ in range(constants.MAX_TAR_HEADER_CHAIN + 1):
        pax = _pax({"comment": "x"})
        pieces += [_header("pax", tarfile.XHDTYPE, len(pax)), _padded(pax)]
    pieces += [*_file("saved_model.pb", b"graph"), _END]
    url = server.route("/chain", Serve(_gzip_stream(pieces)))
    with pytest.raises(errors.UnsafeArchiveError, match="before one member"):
        hk.resolve(url, **fast_download())


def test_sparse_members_are_refused(server, cache):
    old_gnu = [_header("sparse", tarfile.GNUTYPE_SPARSE, 0, tarfile.GNU_FORMAT)]
    pax = _pax(
        {
            "GNU.sparse.major": "1",
            "GNU.sparse.minor": "0",
            "GNU.sparse.name": "sparse",
            "GNU.sparse.realsize": "1000000000",
        }
    )
    # GNU sparse 1.0: the map's first line says how many numbers follow.
    pax_10 = [
        _header("pax", tarfile.XHDTYPE, len(pax)),
        _padded(pax),
        _header("sparse", tarfile.REGTYPE, 512),
        _padded(b"99999999\n"),
    ]
    for name, pieces in (("/old", old_gnu), ("/pax10", pax_10)):
        url = server.route(name, Serve(_gzip_stream([*pieces, _END])))
        with pytest.raises(errors.UnsafeArchiveError, match="sparse"):
            hk.resolve(url, **fast_download())
    assert cache_is_clean(cache)


def test_data_after_the_archive_is_bounded(server, cache, monkeypatch):
    monkeypatch.setattr(constants, "MAX_TAR_TRAILER_BYTES", 100_000)
    pieces = [*_file("saved_model.pb", b"graph"), _END, b"\0" * 1_000_000]
    url = server.route("/trailer", Serve(_gzip_stream(pieces)))
    with pytest.raises(errors.UnsafeArchiveError, match="after the end"):
        hk.resolve(url, **fast_download())


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_long_member_names_still_extract(server, cache, mul_model, fmt):
    # Real archives use pax headers / GNU long names for long paths.
    long_name = "assets/" + "d" * 150 + "/" + "v" * 120 + ".txt"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=fmt) as archive:
        archive.add(mul_model, arcname=".")
        info = tarfile.TarInfo(long_name)
        info.size = 5
        archive.addfile(info, io.BytesIO(b"vocab"))
    url = server.route("/long", Serve(buffer.getvalue()))
    path = hk.resolve(url, **fast_download())
    with open(os.path.join(path, long_name)) as f:
        assert f.read() == "vocab"
