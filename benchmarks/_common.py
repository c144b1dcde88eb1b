"""Shared helpers: interleaved timing, medians, ratios, the machine."""

import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
# The real models live outside the repository; HUBKIT_REAL_MODELS names the
# folder, as for the tests.
REAL = os.environ.get("HUBKIT_REAL_MODELS") or os.path.join(
    os.path.dirname(ROOT), "shared", "testdata", "real_models"
)
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the fixture builders
# Measure the checkout these scripts live in, not whichever keras_hubkit
# the environment installed (an editable install may point elsewhere).
sys.path.insert(0, ROOT)


def interleaved(cases, repeats, warmup=2, cpu=None):
    """Times each case `repeats` times, in turns (A B C A B C ...).

    Args:
        cases: dict name -> zero-argument function.
        cpu: optional dict, filled like the result with the process's CPU
            seconds (all threads) per call: steadier than wall time on a
            machine shared with other jobs.

    Returns:
        dict name -> list of seconds.
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in cases}
    if cpu is not None:
        cpu.update({name: [] for name in cases})
    for _ in range(repeats):
        for name, fn in cases.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - start)
            if cpu is not None:
                cpu[name].append(time.process_time() - start_cpu)
    return times


def stats(samples):
    """Median and interquartile range (seconds)."""
    q = statistics.quantiles(samples, n=4) if len(samples) > 1 else [0, 0, 0]
    return {
        "median": statistics.median(samples),
        "p25": q[0],
        "p75": q[2],
        "n": len(samples),
    }


def ratio(times, ours, peer):
    """Speed of `ours` relative to `peer` (>1: ours is faster), with the
    ratio's spread from the interquartile ranges."""
    a, b = stats(times[ours]), stats(times[peer])
    value = b["median"] / a["median"]
    low = b["p25"] / a["p75"] if a["p75"] else value
    high = b["p75"] / a["p25"] if a["p25"] else value
    return {"ratio": value, "low": low, "high": high}


def environment():
    import keras
    import numpy
    import tensorflow as tf

    versions = {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
    }
    for name in ("tf_keras", "tensorflow_hub", "keras_tuner"):
        try:
            module = __import__(name)
            versions[name] = getattr(module, "__version__", "?")
        except ImportError:
            versions[name] = None
    gpus = tf.config.list_physical_devices("GPU")
    return {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "gpu": [g.name for g in gpus],
        "versions": versions,
        "command": " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def save(name, results):
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{name}.json")
    with open(path, "w") as f:
        json.dump(
            {"environment": environment(), **results},
            f,
            indent=1,
            default=float,
        )
    print(f"wrote {path}")
    return path


def fmt_ratio(r):
    return f"{r['ratio']:.2f}x ({r['low']:.2f}-{r['high']:.2f})"
