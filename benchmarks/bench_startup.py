"""Start-up: `import keras_hubkit` and `hubkit --help` against `import keras`.

Each case is a fresh interpreter (what a user pays), run in turns with the
others. Reported as time ratios to `import keras` (< 1: cheaper).

    python benchmarks/bench_startup.py [--quick]
"""

import os
import subprocess
import sys

import _common

CASES = {
    # The interpreter alone: what every other case pays too.
    "python": ["-c", "pass"],
    "import keras": ["-c", "import keras"],
    # Names load on first use: the bare import is what `hubkit` pays.
    "import keras_hubkit": ["-c", "import keras_hubkit"],
    # What a script pays for the library: Keras first, then us (loads the
    # core at once, registering HubLayer for load_model).
    "import keras, keras_hubkit": ["-c", "import keras, keras_hubkit"],
    "hubkit --help": ["-m", "keras_hubkit", "--help"],
}


def _runner(args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

    def run():
        subprocess.run(
            [sys.executable, *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=_common.ROOT,
            env=env,
        )

    return run


def main(argv=None):
    parser = _common.parser(__doc__)
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 9
    times = _common.interleaved(
        {name: _runner(a) for name, a in CASES.items()}, repeats, warmup=1
    )
    seconds = {name: _common.stats(t) for name, t in times.items()}
    # _common.ratio is peer time / our time (speed); the page wants time
    # ratios to `import keras`, so invert it.
    time_ratio = {}
    for name in CASES:
        if name != "import keras":
            speed = _common.ratio(times, name, "import keras")
            time_ratio[name] = {
                "ratio": 1 / speed["ratio"],
                "low": 1 / speed["high"],
                "high": 1 / speed["low"],
            }
    for name, s in seconds.items():
        print(f"{name:28} {s['median'] * 1000:8.0f} ms")
    for name, r in time_ratio.items():
        print(f"{name:28} {_common.fmt_ratio(r)} the time of import keras")
    _common.save(
        "startup",
        {"repeats": repeats, "seconds": seconds, "time_ratio": time_ratio},
    )


if __name__ == "__main__":
    main()
