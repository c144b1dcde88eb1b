"""Loading: warm resolve + scan + load against a bare tf.saved_model.load,
and a cold download against the raw transfer rate of the same bytes, from
a loopback server as fast as it goes and at 10 MB/s.

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
from keras_hubkit.scanner import _REPORTS

from http_server import ScriptedServer
from http_server import Serve
from http_server import tar_gz_of

MOBILENET = _common.MOBILENET
# A link of 10 MB/s (80 Mbit/s): the same archive, served at a rate a
# download over a network might see.
LINK_BYTES_PER_S = 10e6


def main(argv=None):
    parser = _common.parser(__doc__)
    args = parser.parse_args(argv)
    _common.require_real_model()
    repeats = 5 if args.quick else 25
    path = MOBILENET

    def hubkit_load():
        _REPORTS.clear()  # a first load in a new process scans the graph
        return hk.load(path)

    times = _common.interleaved(
        {
            "hk.load (resolve+scan+load)": hubkit_load,
            "tf.saved_model.load": lambda: tf.saved_model.load(path),
        },
        repeats,
        warmup=1,
    )
    warm = _common.ratio(
        times, "hk.load (resolve+scan+load)", "tf.saved_model.load"
    )
    scan_times = _common.interleaved(
        {"scan": lambda: (_REPORTS.clear(), hk.scan(path))}, repeats
    )
    print(
        f"warm load: hk.load / tf.saved_model.load speed "
        f"{_common.fmt_ratio(warm)}"
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
            "repeats": repeats,
            "scan_ms": _common.stats(scan_times["scan"])["median"] * 1e3,
            "cold": {"archive_mb": len(archive) / 1e6, **cold},
            "cold_link": {"bytes_per_s": LINK_BYTES_PER_S, **link},
        },
    )


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
