"""Loading: a warm `hk.load` (resolve + scan + load) of a cached model
against a bare `tf.saved_model.load`, as a new process's first load of it
(the full scan, and a private copy of the scanned graph for TensorFlow to
load) and as a later load in the same process (the scan's report and the
copy reused while the file's content hash is unchanged); and a cold download
against the raw transfer rate of the same bytes, from a loopback server as
fast as it goes and at 10 MB/s.

Each load starts after a garbage collection (outside its time): the
models loaded before it are otherwise collected on its time, which made
the spread of the ratio several times wider than the difference measured.

    python benchmarks/bench_load.py [--quick]

Needs the real MobileNet V3 (HUBKIT_REAL_MODELS).
"""

import tempfile
import time
import urllib.request

import _common
import tensorflow as tf

import keras_hubkit as hk
from keras_hubkit import scanner as _  # noqa: F401 (import cost paid up front)
from keras_hubkit._private_copy import _COPIES
from keras_hubkit.scanner import _REPORTS

from http_server import ScriptedServer
from http_server import Serve
from http_server import tar_gz_of

MOBILENET = _common.MOBILENET
FIRST = "hk.load, first in a process (full scan)"
AGAIN = "hk.load, again in the process (scan reused)"
BARE = "tf.saved_model.load"
# A link of 10 MB/s (80 Mbit/s): the same archive, served at a rate a
# download over a network might see.
LINK_BYTES_PER_S = 10e6


def main(argv=None):
    parser = _common.parser(__doc__)
    args = parser.parse_args(argv)
    _common.require_real_model()
    repeats = 5 if args.quick else 25
    # A 0.5 s load varies by a few percent from call to call; the
    # scan is about 4% of it, so the warm loads take more turns.
    load_repeats = 5 if args.quick else 60
    path = MOBILENET
    times = _common.interleaved(
        {
            FIRST: lambda: _first_load(path),
            AGAIN: lambda: hk.load(path),
            BARE: lambda: tf.saved_model.load(path),
        },
        load_repeats,
        warmup=1,
        collect=True,
    )
    scan_times = _common.interleaved(
        {"scan": lambda: (_REPORTS.clear(), hk.scan(path))}, repeats
    )
    warm = _common.ratio(times, FIRST, BARE)
    again = _common.ratio(times, AGAIN, BARE)
    print(
        f"warm load: hk.load / tf.saved_model.load speed "
        f"{_common.fmt_ratio(warm)} (first in a process: full scan), "
        f"{_common.fmt_ratio(again)} (again: scan reused)"
    )

    archive = tar_gz_of(path)
    cold = _cold_download(archive, repeats)
    print(
        f"cold download (incl. unpacking) from loopback at "
        f"{_common.fmt_ratio(cold['ratio'])} the raw transfer rate of the "
        f"same {len(archive) / 1e6:.1f} MB"
    )
    link = _cold_download(archive, max(3, repeats // 2), LINK_BYTES_PER_S)
    print(
        f"cold download at {LINK_BYTES_PER_S / 1e6:.0f} MB/s: "
        f"{_common.fmt_ratio(link['ratio'])} the raw transfer rate"
    )
    _common.save(
        "load",
        {
            "warm_ms": _common.median_ms(times),
            "warm_speed_ratio": warm,
            "again_speed_ratio": again,
            "repeats": load_repeats,
            "scan_ms": _common.stats(scan_times["scan"])["median"] * 1e3,
            "cold": {"archive_mb": len(archive) / 1e6, **cold},
            "cold_link": {"bytes_per_s": LINK_BYTES_PER_S, **link},
        },
    )


def _first_load(path):
    """`hk.load` as a new process's first load of a cached model: no scan
    report in memory, so the graph is scanned, and no private copy of the
    scanned graph for TensorFlow to load, so one is written."""
    _REPORTS.clear()
    _COPIES.clear()
    return hk.load(path)


def _cold_download(archive, repeats, bytes_per_s=None):
    """`hk.resolve` of a URL into an empty cache (download, checks,
    unpacking, writing) against reading the same bytes raw from the same
    server, in turns; with `bytes_per_s` the server sends at that rate."""
    server = ScriptedServer()
    delay = 65536 / bytes_per_s if bytes_per_s else 0.0  # per 64 KiB chunk
    url = server.route("/m", Serve(archive, chunk_delay=delay))
    times = {"raw": [], "resolve": []}
    with tempfile.TemporaryDirectory() as cache:
        for i in range(repeats):
            start = time.perf_counter()
            with urllib.request.urlopen(url) as response:
                while response.read(1 << 20):
                    pass
            times["raw"].append(time.perf_counter() - start)
            start = time.perf_counter()
            hk.resolve(url + f"?i={i}", cache_dir=cache, progress=False)
            times["resolve"].append(time.perf_counter() - start)
    server.stop()
    return {
        "raw_ms": _common.stats(times["raw"])["median"] * 1e3,
        "resolve_ms": _common.stats(times["resolve"])["median"] * 1e3,
        "ratio": _common.ratio(times, "resolve", "raw"),
        "repeats": repeats,
    }


if __name__ == "__main__":
    main()
