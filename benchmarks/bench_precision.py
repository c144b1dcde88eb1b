"""The GPU rows: HubLayer, TFSMLayer and the raw floor for predict, a train
step and `fit`, in float32 and `mixed_float16`, with and without XLA
(`jit_compile`).

Written for a machine with a GPU. It runs on a CPU too, where mixed
precision has no fast kernels and XLA compiles MobileNet V3's training
step for minutes, so without a GPU (and with `--quick` anywhere) it
measures the tiny model alone. The text model is always left out: its
string inputs have no float16 form and no XLA kernel.

The paths are those of `bench_layer.py` (a one-layer Keras model with the
SavedModel, `mse` against zeros, SGD; the raw floor a `tf.function` over
`tf.saved_model.load`), made per setting: the Keras paths under the
global dtype policy (`mixed_float16` also makes `compile` scale the loss)
and with `compile(jit_compile=...)`, the raw floor with
`tf.function(jit_compile=...)`. The SavedModel computes in float32 in
every path (a TF Hub model is traced in float32, and HubLayer casts its
inputs to that dtype), so `mixed_float16` changes only the Keras side:
the rows show what the policy costs around a float32 SavedModel, not a
float16 speed-up; the raw floor's rows differ only by XLA. TFSMLayer
cannot run under `mixed_float16` (it passes float16 inputs to the
float32 SavedModel), which the results record.

    python benchmarks/bench_precision.py [--quick] [--setup TEXT]

`--setup` records how the machine got its TensorFlow and CUDA libraries,
where that is not a plain `pip install "tensorflow[and-cuda]"`; the
results page prints it beside the rows. A finished run writes
`results/precision.json`, or `results/precision_gpu.json` on a GPU (the
page shows both). After each setting the rows so far go to the same name
with `_partial`, so a run cut short (a time limit on a lent machine)
keeps what it measured without replacing the last finished run's.

MobileNet V3 needs the real models (HUBKIT_REAL_MODELS).
"""

import tempfile

import _common
import keras
import tensorflow as tf
from bench_layer import _why_it_failed
from bench_layer import keras_path
from bench_layer import model_specs
from bench_layer import raw_path

import keras_hubkit as hk

SETTINGS = (
    ("float32", False),
    ("float32", True),
    ("mixed_float16", False),
    ("mixed_float16", True),
)
KINDS = ("predict", "train", "fit")


def _paths(path, x, jit, failures):
    paths = {"raw": raw_path(path, x, jit_compile=jit)}
    target = paths["raw"]["target"]
    paths["hubkit"] = keras_path(
        hk.HubLayer(path, trainable=True), x, target, jit_compile=jit
    )
    try:
        tfsm = keras.layers.TFSMLayer(path, call_endpoint="__call__")
        paths["tfsm"] = keras_path(tfsm, x, target, jit_compile=jit)
    except Exception as e:  # TFSMLayer fails on some models and policies
        failures["tfsm"] = _why_it_failed(e)
        print(f"    TFSMLayer cannot run here: {failures['tfsm']}")
    return paths


def measure(model, path, x, repeats, rows, keep):
    """Appends a row per setting and kind to `rows`, calling `keep()`
    after each setting, so that a run cut short keeps what it measured."""
    for policy, jit in SETTINGS:
        print(f"  {policy}, jit_compile={jit}", flush=True)
        keras.mixed_precision.set_global_policy(policy)
        try:
            failures = {}
            paths = _paths(path, x, jit, failures)
            for kind in KINDS:
                cases = {p: v[kind] for p, v in paths.items()}
                times = _common.interleaved(cases, repeats, warmup=1)
                row = {
                    "model": model,
                    "batch": int(x.shape[0]),
                    "policy": policy,
                    "jit_compile": jit,
                    "kind": kind,
                    "repeats": repeats,
                    "cannot_run": failures,
                    "ms": _common.median_ms(times),
                    "vs_raw": {
                        p: _common.ratio(times, p, "raw")
                        for p in times
                        if p != "raw"
                    },
                }
                rows.append(row)
                said = (f"{p} {ms:.2f} ms" for p, ms in row["ms"].items())
                print(f"    {kind:7} " + "  ".join(said))
        finally:
            keras.mixed_precision.set_global_policy("float32")
        keep()


def main(argv=None):
    parser = _common.parser(__doc__)
    parser.add_argument(
        "--setup", default="", help="how TensorFlow and CUDA got there"
    )
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 15
    gpu = bool(tf.config.list_physical_devices("GPU"))
    if gpu and not args.quick:
        _common.require_real_model()  # MobileNet V3 is what a GPU run is for
    # A GPU run keeps its own results beside the CPU's.
    name = "precision_gpu" if gpu else "precision"
    rows = []

    def keep(complete=False):
        results = {"rows": rows, "gpu": gpu, "setup": args.setup}
        if complete:
            _common.save(name, results)
            _common.discard(f"{name}_partial")
        else:
            _common.save(f"{name}_partial", results)

    with tempfile.TemporaryDirectory() as workdir:
        for model, path, make, batches in model_specs(workdir):
            kind = model.split(":")[0]
            if kind == "text":
                continue  # string inputs: no float16, and no XLA kernel
            if kind == "image" and (args.quick or not gpu):
                print(f"{model}: skipped ({'--quick' if gpu else 'no GPU'})")
                continue
            print(model)
            measure(model, path, make(batches[-1]), repeats, rows, keep)
    keep(complete=True)
    return rows


if __name__ == "__main__":
    main()
