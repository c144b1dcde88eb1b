"""What several steps per compiled call cost and save, per stage.

`StagedFineTuner(steps_per_execution="auto")` runs a stage with several
steps per call only when the steps save more than Keras's step loop costs
to compile (`finetune/runner.py`: `_WRAP_MS`, `_WRAP_MS_PER_VARIABLE`,
`_SAVED_MS_PER_STEP`). This measures both: one-stage, one-epoch runs with
one and with 32 steps per call, at two epoch lengths, taking turns. The
difference between the two settings is `wrap - saved * steps`; two
lengths give both terms. The predicted wrap cost is the runner's formula
for the variables the step carries.

    python benchmarks/bench_steps_per_call.py [--quick]
"""

import argparse
import os
import tempfile

import _common
import keras
import numpy as np
import tensorflow as tf

import keras_hubkit as hk
from keras_hubkit.finetune import runner

import models

SPE = 32


def specs(workdir):
    """(name, path, make_input(n), batch, (short, long) steps per epoch)."""
    words = np.array(models.VOCAB)
    text = models.save_text_embedding(
        os.path.join(workdir, "text", "m"), dim=64
    )
    tiny = models.save_mul_model(os.path.join(workdir, "tiny"))
    return [
        (
            "text: string embedding",
            text,
            lambda n: tf.constant(
                [" ".join(np.random.choice(words, 8)) for _ in range(n)]
            ),
            256,
        ),
        (
            "tiny: x * v (per-call overhead)",
            tiny,
            lambda n: tf.random.uniform((n, 1)),
            32,
        ),
    ]


def measure(name, path, make, batch, lengths, repeats):
    model = keras.Sequential(
        [hk.HubLayer(path, trainable=True), keras.layers.Dense(2)]
    )
    data = {}
    for steps in lengths:
        n = steps * batch
        data[steps] = (make(n), (np.arange(n) % 2).astype("int32"))
    model(data[lengths[0]][0][:1])
    carried = len(model.weights) + 2 * len(model.trainable_weights)

    def run(spe, steps):
        x, y = data[steps]
        hk.finetune.StagedFineTuner(
            model,
            [hk.finetune.Stage(1, unfreeze="all", lr=1e-3)],
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            steps_per_execution=spe,
        ).run(x, y, batch_size=batch, verbose=0)

    cases = {
        f"{spe} {steps}": (lambda s=spe, k=steps: run(s, k))
        for steps in lengths
        for spe in (1, SPE)
    }
    times = _common.interleaved(cases, repeats, warmup=1)
    ms = {k: _common.stats(v)["median"] * 1e3 for k, v in times.items()}
    short, long = lengths
    # extra(steps) = wrap - saved * steps, from the medians.
    extra = {k: ms[f"{SPE} {k}"] - ms[f"1 {k}"] for k in lengths}
    saved = (extra[short] - extra[long]) / (long - short)
    wrap = extra[short] + saved * short
    predicted = runner._WRAP_MS + runner._WRAP_MS_PER_VARIABLE * carried
    row = {
        "model": name,
        "batch": batch,
        "steps": list(lengths),
        "repeats": repeats,
        "carried_variables": carried,
        "run_ms": ms,
        "saved_ms_per_step": saved,
        "wrap_ms": wrap,
        "predicted_wrap_ms": predicted,
        "predicted_saved_ms_per_step": runner._SAVED_MS_PER_STEP,
        "break_even_steps": wrap / saved if saved > 0 else None,
    }
    print(
        f"  {carried} variables carried: wrap {wrap:.0f} ms (runner "
        f"predicts {predicted:.0f}), saves {saved:.2f} ms per step (runner "
        f"assumes {runner._SAVED_MS_PER_STEP}); pays from "
        + (
            f"{row['break_even_steps']:.0f} steps"
            if row["break_even_steps"]
            else "never"
        )
    )
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 7
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name, path, make, batch in specs(workdir):
            print(name)
            lengths = (16, 64) if args.quick else (16, 128)
            rows.append(measure(name, path, make, batch, lengths, repeats))
    _common.save("steps_per_call", {"rows": rows, "spe": SPE})
    return rows


if __name__ == "__main__":
    main()
