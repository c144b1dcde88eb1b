"""Shared helpers: the command line, interleaved timing, medians, ratios,
the machine, and where results go."""

import argparse
import gc
import json
import logging
import os
import platform
import shlex
import statistics
import sys
import time

STARTED = time.perf_counter()

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The scripts trace afresh on purpose (every run compiles, as a user's
# does): TensorFlow's retracing warnings would only hide the figures.
logging.getLogger("tensorflow").setLevel(logging.ERROR)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
# `--quick` results: a first look, never on the results page.
QUICK_RESULTS = os.path.join(RESULTS, "quick")
# The real models live outside the repository; HUBKIT_REAL_MODELS names the
# folder, as for the tests.
REAL = os.environ.get("HUBKIT_REAL_MODELS") or os.path.join(
    os.path.dirname(ROOT), "shared", "testdata", "real_models"
)
MOBILENET = os.path.join(REAL, "mobilenet_v3_small_075_224_feature_vector_5")
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the fixture builders
# Measure the checkout these scripts live in, not whichever keras_hubkit
# the environment installed (an editable install may point elsewhere).
sys.path.insert(0, ROOT)


QUICK_HELP = (
    "fewer repetitions, for a first look: the results go to "
    "benchmarks/results/quick/ and never onto the results page"
)


def parser(doc):
    """The script's command line: its docstring as help, and `--quick`."""
    result = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    result.add_argument("--quick", action="store_true", help=QUICK_HELP)
    return result


def require_real_model():
    """Exits with a message saying where the real models come from, when
    MobileNet V3 is missing."""
    if os.path.isdir(MOBILENET):
        return
    sys.exit(
        f"This benchmark needs the real MobileNet V3 SavedModel at "
        f"{MOBILENET}. "
        "Set HUBKIT_REAL_MODELS to the folder that holds the real models "
        "(see benchmarks/README.md) and run it again."
    )


def plural(count, word, many=None):
    """`1 run`, `3 runs` (`many`: an irregular plural)."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def interleaved(cases, repeats, warmup=2, cpu=None, collect=False):
    """Times each case `repeats` times, in turns (A B C A B C ...).

    Args:
        cases: dict name -> zero-argument function.
        cpu: optional dict, filled like the result with the process's CPU
            seconds (all threads) per call: steadier than wall time on a
            machine shared with other jobs.
        collect: run Python's garbage collector before each call, outside
            its time, so that one call's garbage (a loaded model's
            objects) is not collected on the next call's time.

    Returns:
        dict name -> list of seconds.
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in cases}
    if cpu is not None:
        cpu.update({name: [] for name in cases})
    print(f"    {repeats} rounds of {len(cases)}: ", end="", flush=True)
    for _ in range(repeats):
        print(".", end="", flush=True)
        for name, fn in cases.items():
            if collect:
                gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - start)
            if cpu is not None:
                cpu[name].append(time.process_time() - start_cpu)
    print(flush=True)
    return times


def stats(samples):
    """Median and interquartile range (seconds). The quartiles are
    interpolated between samples ("inclusive"), so with few samples they
    stay inside the data."""
    q = (
        statistics.quantiles(samples, n=4, method="inclusive")
        if len(samples) > 1
        else [samples[0]] * 3
    )
    return {
        "median": statistics.median(samples),
        "p25": q[0],
        "p75": q[2],
        "n": len(samples),
    }


def median_ms(times):
    """Each case's median in milliseconds (`times`: name -> seconds)."""
    return {name: stats(t)["median"] * 1e3 for name, t in times.items()}


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
    if gpus:  # the CUDA and cuDNN this TensorFlow was built against
        built = tf.sysconfig.get_build_info()
        versions["cuda"] = built.get("cuda_version")
        versions["cudnn"] = built.get("cudnn_version")
    return {
        "machine": _machine(),
        "cpus": os.cpu_count(),
        "gpu": [_gpu_name(g) for g in gpus],
        "versions": versions,
        "command": _command(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def _machine():
    """The architecture, and the processor where it says more."""
    machine, processor = platform.machine(), platform.processor()
    return machine if processor in ("", machine) else f"{machine} {processor}"


def _gpu_name(device):
    import tensorflow as tf

    details = tf.config.experimental.get_device_details(device)
    return details.get("device_name") or device.name


def results_folder(quick=None):
    if quick is None:
        quick = "--quick" in sys.argv
    return QUICK_RESULTS if quick else RESULTS


def save(name, results, environment_key="environment"):
    """Writes `results/<name>.json` (`results/quick/` for `--quick`) with
    the machine, versions, command, date and the run's wall time."""
    folder = results_folder()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.json")
    env = {**environment(), "seconds": round(time.perf_counter() - STARTED)}
    with open(path, "w") as f:
        json.dump(
            {**results, environment_key: env},
            f,
            indent=1,
            default=float,
        )
    print(f"wrote {path}")
    return path


def discard(name):
    """Removes `results/<name>.json` (of this run's kind), if any."""
    path = os.path.join(results_folder(), f"{name}.json")
    if os.path.exists(path):
        os.remove(path)


def _command():
    """The command line as typed, quoted so that it can be run again; a
    `--setup` text is kept in the results themselves, not repeated here."""
    args = list(sys.argv)
    for i, arg in enumerate(args):
        if arg == "--setup" and i + 1 < len(args):
            args[i + 1] = "TEXT"
        elif arg.startswith("--setup="):
            args[i] = "--setup=TEXT"
    return shlex.join(args)


def fmt_ratio(r):
    return f"{r['ratio']:.2f}x ({r['low']:.2f}-{r['high']:.2f})"
