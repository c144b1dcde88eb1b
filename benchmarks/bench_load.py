"""Loading: warm resolve + scan + load against a bare tf.saved_model.load,
and a cold download from a loopback server against the raw transfer rate.

    python benchmarks/bench_load.py [--quick]
"""

import argparse
import os
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

MOBILENET = os.path.join(
    _common.REAL, "mobilenet_v3_small_075_224_feature_vector_5"
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 15
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
    server = ScriptedServer()
    url = server.route("/m", Serve(archive))
    download, raw = [], []
    with tempfile.TemporaryDirectory() as cache:
        for i in range(repeats):
            start = time.perf_counter()
            with urllib.request.urlopen(url) as response:
                while response.read(1 << 20):
                    pass
            raw.append(time.perf_counter() - start)
            start = time.perf_counter()
            hk.resolve(url + f"?i={i}", cache_dir=cache, progress=False)
            download.append(time.perf_counter() - start)
    server.stop()
    cold = {
        "ratio": _common.stats(raw)["median"]
        / _common.stats(download)["median"]
    }
    print(
        f"cold download (incl. unpacking) at {cold['ratio']:.2f}x the raw "
        f"transfer rate of the same {len(archive) / 1e6:.1f} MB"
    )
    _common.save(
        "load",
        {
            "warm_ms": {
                k: _common.stats(v)["median"] * 1e3 for k, v in times.items()
            },
            "warm_speed_ratio": warm,
            "repeats": repeats,
            "scan_ms": _common.stats(scan_times["scan"])["median"] * 1e3,
            "cold": {
                "archive_mb": len(archive) / 1e6,
                "raw_ms": _common.stats(raw)["median"] * 1e3,
                "resolve_ms": _common.stats(download)["median"] * 1e3,
                "rate_ratio": cold["ratio"],
            },
        },
    )


if __name__ == "__main__":
    main()
