"""hk.resolve and the model cache, against servers on 127.0.0.1."""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import textwrap
import time

import numpy as np
import pytest

import keras_hubkit as hk
from keras_hubkit import errors

from helpers import cache_is_clean
from helpers import fast_download
from http_server import Redirect
from http_server import Serve
from http_server import Stall
from http_server import Status
from http_server import crafted_tar_gz
from http_server import saved_model_members
from http_server import tar_gz_of


# ------------------------------------------------------------ local paths
def test_local_path_is_returned_as_is(mul_model):
    assert hk.resolve(mul_model) == mul_model
    assert hk.resolve("file://" + mul_model) == mul_model


def test_missing_local_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        hk.resolve(str(tmp_path / "missing"))


def test_unknown_scheme_lists_supported():
    with pytest.raises(errors.UnsupportedSchemeError, match="https://"):
        hk.resolve("ftp://example/model")


# --------------------------------------------------------------- download
def test_download_once_then_cache_hit(server, cache, model_archive):
    url = server.route("/models/mul/1", Serve(model_archive))
    path = hk.resolve(url, **fast_download())
    assert path == str(cache / hashlib.sha1(url.encode()).hexdigest())
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    assert "tf-hub-format=compressed" in server.requests[0][1]
    assert hk.resolve(url, **fast_download()) == path
    assert server.hits("/models/mul/1") == 1
    descriptor = cache / (os.path.basename(path) + ".descriptor.txt")
    assert descriptor.read_text().startswith(f"Module: {url}\n")
    layer = hk.HubLayer(url)
    np.testing.assert_allclose(layer([1.0, 2.0]), [2.0, 4.0])


def test_redirects_are_followed(server, cache, model_archive):
    server.route("/real.tar.gz", Serve(model_archive))
    url = server.route("/models/r/1", Redirect("/real.tar.gz", 303))
    path = hk.resolve(url, **fast_download())
    assert os.path.exists(os.path.join(path, "saved_model.pb"))


def test_archive_wrapped_in_one_folder(server, cache, mul_model):
    url = server.route("/wrapped", Serve(tar_gz_of(mul_model, "model")))
    assert os.path.exists(
        os.path.join(hk.resolve(url, **fast_download()), "saved_model.pb")
    )


def test_404_names_url_and_status(server, cache):
    url = server.route("/missing", Status(404))
    with pytest.raises(errors.HandleNotFoundError, match="HTTP 404") as info:
        hk.resolve(url, **fast_download())
    assert "/missing" in str(info.value)
    assert server.hits("/missing") == 1  # 4xx is not retried
    assert cache_is_clean(cache)


def test_403_is_a_download_error(server, cache):
    url = server.route("/private", Status(403))
    with pytest.raises(errors.DownloadError, match="HTTP 403"):
        hk.resolve(url, **fast_download())


def test_5xx_and_429_are_retried(server, cache, model_archive):
    url = server.route(
        "/flaky",
        Status(503),
        Status(429, {"Retry-After": "0"}),
        Serve(model_archive),
    )
    assert hk.resolve(url, **fast_download())
    assert server.hits("/flaky") == 3


def test_retries_are_bounded(server, cache):
    url = server.route("/down", Status(500))
    with pytest.raises(errors.DownloadError, match="HTTP 500"):
        hk.resolve(url, **fast_download(max_retries=2))
    assert server.hits("/down") == 3
    assert cache_is_clean(cache)


def test_short_body_is_an_error(server, cache, model_archive):
    url = server.route(
        "/short",
        Serve(model_archive, stop_after=len(model_archive) // 2),
    )
    with pytest.raises(errors.DownloadError, match=r"cut short|truncated"):
        hk.resolve(url, **fast_download())
    assert cache_is_clean(cache)


def test_lying_content_length_is_an_error(server, cache, model_archive):
    url = server.route(
        "/liar", Serve(model_archive, content_length=len(model_archive) + 500)
    )
    with pytest.raises(errors.DownloadError):
        hk.resolve(url, **fast_download())
    assert cache_is_clean(cache)


def test_corrupt_gzip_is_an_error(server, cache, model_archive):
    corrupt = bytearray(model_archive)
    corrupt[len(corrupt) // 2] ^= 0xFF
    corrupt[-6] ^= 0xFF  # the CRC trailer
    url = server.route("/corrupt", Serve(bytes(corrupt)))
    with pytest.raises(errors.DownloadError, match="not a complete"):
        hk.resolve(url, **fast_download())
    assert cache_is_clean(cache)


def test_html_page_is_an_error(server, cache):
    url = server.route(
        "/login",
        Serve(b"<!DOCTYPE html><html>Sign in</html>", content_type="text/html"),
    )
    with pytest.raises(errors.DownloadError, match="web page"):
        hk.resolve(url, **fast_download())
    assert cache_is_clean(cache)


def test_archive_without_saved_model(server, cache):
    url = server.route(
        "/empty", Serve(crafted_tar_gz([({"name": "README"}, b"hi")]))
    )
    with pytest.raises(errors.DownloadError, match=r"no saved_model\.pb"):
        hk.resolve(url, **fast_download())
    assert cache_is_clean(cache)


def test_stalled_download_times_out(server, cache):
    url = server.route("/stall", Stall(10, partial=b"\x1f\x8b" + b"\0" * 100))
    start = time.monotonic()
    with pytest.raises(errors.DownloadError, match="stalled"):
        hk.resolve(url, **fast_download(read_timeout=0.5))
    assert time.monotonic() - start < 5
    assert cache_is_clean(cache)


# -------------------------------------------------------- hostile archives
_SM = ({"name": "saved_model.pb"}, b"graph")


@pytest.mark.parametrize(
    "member, message",
    [
        (({"name": "../evil.txt"}, b"x"), "outside"),
        (({"name": "variables/../../evil.txt"}, b"x"), "outside"),
        (({"name": "/etc/evil.txt"}, b"x"), "absolute"),
        (
            (
                {
                    "name": "link",
                    "type": tarfile.SYMTYPE,
                    "linkname": "/etc/passwd",
                },
                None,
            ),
            "symbolic link",
        ),
        (
            (
                {
                    "name": "hard",
                    "type": tarfile.LNKTYPE,
                    "linkname": "saved_model.pb",
                },
                None,
            ),
            "hard link",
        ),
        (({"name": "dev", "type": tarfile.CHRTYPE}, None), "device"),
        (({"name": "fifo", "type": tarfile.FIFOTYPE}, None), "FIFO"),
        (({"name": "saved_model.pb"}, b"again"), "twice"),
    ],
)
def test_hostile_archives_are_refused(server, cache, tmp_path, member, message):
    url = server.route("/hostile", Serve(crafted_tar_gz([_SM, member])))
    with pytest.raises(errors.UnsafeArchiveError, match=message):
        hk.resolve(url, **fast_download())
    assert cache_is_clean(cache)
    assert not (tmp_path / "evil.txt").exists()
    assert not os.path.exists("/etc/evil.txt")


def test_decompression_bomb_is_bounded(server, cache):
    bomb = crafted_tar_gz([_SM, ({"name": "zeros"}, b"\0" * 5_000_000)])
    assert len(bomb) < 50_000
    url = server.route("/bomb", Serve(bomb))
    with pytest.raises(errors.UnsafeArchiveError, match="more than"):
        hk.resolve(url, **fast_download(max_bytes=1_000_000))
    assert cache_is_clean(cache)


def test_member_count_is_bounded(server, cache):
    many = [({"name": f"f{i}"}, b"") for i in range(50)]
    url = server.route("/many", Serve(crafted_tar_gz([_SM, *many])))
    with pytest.raises(errors.UnsafeArchiveError, match="members"):
        hk.resolve(url, **fast_download(max_members=20))


def test_extracted_modes_are_ours(server, cache, mul_model):
    members = [
        ({**fields, "mode": 0o4777}, data)
        for fields, data in saved_model_members(mul_model)
    ]
    url = server.route("/modes", Serve(crafted_tar_gz(members)))
    path = hk.resolve(url, **fast_download())
    mode = os.stat(os.path.join(path, "saved_model.pb")).st_mode & 0o7777
    assert mode == 0o644


# ----------------------------------------------------------- cache rules
def test_incomplete_entry_is_replaced(server, cache, model_archive):
    url = server.route("/m", Serve(model_archive))
    entry = cache / hashlib.sha1(url.encode()).hexdigest()
    (entry / "variables").mkdir(parents=True)  # files cleaned, folder kept
    path = hk.resolve(url, **fast_download())
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    assert server.hits("/m") == 1


def test_tensorflow_hub_cache_is_reused_without_request(
    server, cache, mul_model
):
    url = f"{server.base}/google/mul/1"  # no route: any request would 404
    entry = cache / hashlib.sha1(url.encode()).hexdigest()
    shutil.copytree(mul_model, entry)
    (cache / (entry.name + ".descriptor.txt")).write_text(
        f"Module: {url}\nDownload Time: 2024-01-01\n"
    )
    assert hk.resolve(url, **fast_download()) == str(entry)
    assert server.requests == []


def test_offline_hit_opens_no_socket_and_miss_is_clear(
    server, cache, model_archive, monkeypatch
):
    url = server.route("/m", Serve(model_archive))
    path = hk.resolve(url, **fast_download())
    server.stop()  # a socket would now fail
    monkeypatch.setenv("HUBKIT_OFFLINE", "1")
    assert hk.resolve(url, **fast_download()) == path
    with pytest.raises(errors.OfflineError, match="not in the cache"):
        hk.resolve(url + "-other", **fast_download())
    with pytest.raises(ConnectionError):
        hk.resolve(url + "-other", **fast_download())


def test_credentials_never_leak(server, cache, model_archive):
    base = server.base.replace("http://", "http://alice:s3cret@")
    server.route("/private/m", Serve(model_archive))
    url = f"{base}/private/m?token=tok123&v=1"
    path = hk.resolve(url, **fast_download())
    headers = server.requests[0][2]
    assert headers["Authorization"].startswith("Basic ")
    descriptor = open(path + ".descriptor.txt").read()
    assert "s3cret" not in descriptor and "tok123" not in descriptor
    server.route("/private/gone", Status(404))
    with pytest.raises(errors.HandleNotFoundError) as info:
        hk.resolve(f"{base}/private/gone?token=tok123", **fast_download())
    assert "s3cret" not in str(info.value)
    assert "tok123" not in str(info.value)
    entry = hk.ModelCache().entries()[0]
    assert "s3cret" not in entry.handle


def test_progress_bar_only_when_asked(server, cache, model_archive, capsys):
    url = server.route("/p", Serve(model_archive))
    hk.resolve(url, **fast_download(progress=False))
    assert "Downloading" not in capsys.readouterr().err
    hk.resolve(url + "?x=1", **fast_download(progress=True))
    err = capsys.readouterr().err
    assert "Downloading" in err and "MB/s" in err


def test_cache_list_remove_clear(server, cache, model_archive):
    a = server.route("/a", Serve(model_archive))
    b = server.route("/b", Serve(model_archive))
    hk.resolve(a, **fast_download())
    hk.resolve(b, **fast_download())
    model_cache = hk.ModelCache()
    entries = model_cache.entries()
    assert sorted(e.handle for e in entries) == [a, b]
    assert all(e.size_bytes > 0 and e.valid for e in entries)
    assert model_cache.remove(a)
    assert [e.handle for e in model_cache.entries()] == [b]
    assert model_cache.clear() == 1
    assert model_cache.entries() == []


# ------------------------------------------------------ several processes
_RESOLVE_SCRIPT = textwrap.dedent(
    """
    import sys, keras_hubkit as hk
    print("PATH", hk.resolve(sys.argv[1], progress=False, read_timeout=30))
    """
)


def _spawn(url, cache):
    env = {**os.environ, "TFHUB_CACHE_DIR": str(cache)}
    return subprocess.Popen(
        [sys.executable, "-c", _RESOLVE_SCRIPT, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.slow
def test_concurrent_processes_download_once(server, cache, model_archive):
    url = server.route("/shared", Serve(model_archive, chunk_delay=0.3))
    procs = [_spawn(url, cache) for _ in range(4)]
    outs = [p.communicate(timeout=180) for p in procs]
    paths = {
        line
        for out, _ in outs
        for line in out.splitlines()
        if line.startswith("PATH")
    }
    assert len(paths) == 1, [err[-1500:] for _, err in outs]
    assert server.hits("/shared") == 1


@pytest.mark.slow
def test_killed_download_lock_is_taken_over(server, cache, model_archive):
    url = server.route(
        "/killed",
        Stall(
            120, partial=model_archive[:100], content_length=len(model_archive)
        ),
        Serve(model_archive),
    )
    first = _spawn(url, cache)
    deadline = time.monotonic() + 60
    while server.hits("/killed") == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    leftovers = [n for n in os.listdir(cache) if n.endswith(".tmp")]
    assert leftovers  # the download had started
    first.send_signal(signal.SIGKILL)
    first.wait()
    start = time.monotonic()
    second = _spawn(url, cache)
    out, err = second.communicate(timeout=120)
    assert "PATH" in out, err[-2000:]
    # TF's import dominates; the lock itself is free at once.
    assert time.monotonic() - start < 60
    assert not [n for n in os.listdir(cache) if n.endswith(".tmp")]
    assert server.hits("/killed") == 2


# ------------------------------------------------- tf.io.gfile filesystems
def test_gfile_folder_is_read_in_place(mul_model):
    import tensorflow as tf

    folder = "ram://models/mul_folder"
    for root, _, files in os.walk(mul_model):
        rel = os.path.relpath(root, mul_model)
        tf.io.gfile.makedirs(f"{folder}/{rel}".rstrip("/."))
        for name in files:
            tf.io.gfile.copy(
                os.path.join(root, name),
                f"{folder}/{rel}/{name}".replace("/./", "/"),
                overwrite=True,
            )
    assert hk.resolve(folder) == folder
    np.testing.assert_allclose(hk.HubLayer(folder)([3.0]), [6.0])


def test_gfile_archive_goes_through_the_cache(cache, model_archive):
    import tensorflow as tf

    handle = "ram://models/mul.tar.gz"
    with tf.io.gfile.GFile(handle, "wb") as f:
        f.write(model_archive)
    path = hk.resolve(handle, progress=False)
    assert path.startswith(str(cache))
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    with pytest.raises(errors.HandleNotFoundError):
        hk.resolve("ram://models/missing")
