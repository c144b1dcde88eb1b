"""Runs every benchmark, then writes the results page (docs/benchmarks.md).

python benchmarks/run_all.py            # full run (about 15-25 min on 2 CPUs)
python benchmarks/run_all.py --quick    # fewer repeats
python benchmarks/run_all.py --report   # only rebuild the page from results/
"""

import argparse
import json
import os
import subprocess
import sys

import _common

SCRIPTS = [
    "bench_startup.py",
    "bench_layer.py",
    "bench_load.py",
    "bench_search.py",
    "bench_quality.py",
    "bench_memory.py",
    "bench_loop_parts.py",
    "bench_autotune.py",
]
PAGE = os.path.join(_common.ROOT, "docs", "benchmarks.md")
IMPORTTIME = (
    'python -X importtime -c "import keras_hubkit, keras_hubkit.hub_layer"'
)
# Why the page has no GPU rows (from the device tool's status and its
# package list, /work/.library/device/KINDS.md, read on 2026-11-28).
GPU_NOTE = (
    "No GPU rows. The round that last ran these scripts was not lent a GPU "
    "machine (machines are lent to some of this project's tasks, by "
    "a draw no session can change). The GPU machines this project can be "
    "lent run an image without TensorFlow and cannot download packages; "
    "packages can only be carried, 64 MiB per call, and TensorFlow's wheel "
    "is about 600 MB. So no GPU figure, with or without `mixed_float16` "
    "and `jit_compile`, can be measured here. On any machine with a GPU "
    "and TensorFlow, `python benchmarks/bench_layer.py` runs unchanged "
    "and measures HubLayer, TFSMLayer and the raw floor there."
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args(argv)
    if not args.report:
        for script in SCRIPTS:
            if not os.path.exists(os.path.join(_common.HERE, script)):
                continue
            command = [sys.executable, os.path.join(_common.HERE, script)]
            if args.quick and script != "bench_memory.py":
                command.append("--quick")
            print("$", " ".join(command), flush=True)
            subprocess.run(command, check=True)
    write_page()


def _load(name):
    path = os.path.join(_common.RESULTS, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_page():
    lines = [
        "# Benchmarks",
        "",
        "Every figure comes from a script in `benchmarks/` and is a ratio of "
        "medians measured in one process, interleaved (A B A B ...), with "
        "the spread from the interquartile ranges (low-high) and the number "
        "of repetitions (*n*), because these machines are noisy. The scripts "
        "measure the checkout they live in. Reproduce everything with:",
        "",
        "```bash",
        'pip install -e ".[test,bench]"   # bench: tf_keras + tensorflow_hub',
        "python benchmarks/run_all.py",
        "```",
        "",
    ]
    layer = _load("layer")
    if layer:
        lines += _environment(layer["environment"])
    lines += _targets_section()
    if layer:
        lines += _layer_section(layer)
        lines += _loops_section(layer)
    for name, render in (
        ("startup", _startup_section),
        ("load", _load_section),
        ("search", _search_section),
        ("quality", _quality_section),
        ("memory", _memory_section),
        ("loop_parts", _loop_parts_section),
        ("autotune", _autotune_section),
    ):
        data = _load(name)
        if data:
            lines += render(data)
    with open(PAGE, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {PAGE}")


def _environment(env):
    v = env["versions"]
    return [
        f"Machine: {env['machine']}, {env['cpus']} CPUs"
        f"{', GPU ' + ', '.join(env['gpu']) if env['gpu'] else ', no GPU'}; "
        f"Python {v['python']}, TensorFlow {v['tensorflow']}, Keras "
        f"{v['keras']}, tf_keras {v['tf_keras']}, tensorflow_hub "
        f"{v['tensorflow_hub']}; {env['date']}.",
        "",
    ]


# ---------------------------------------------------------------- targets
def _targets_section():
    """The targets of the performance issue, each with the figure that
    decides it (or why there is none)."""
    rows = [
        _loops_target(_load("layer"), _load("search")),
        _fit_finding(_load("layer")),
        _search_target(_load("search")),
        _startup_target(_load("startup")),
        _warm_load_target(_load("load")),
        ("GPU rows", "blocked", GPU_NOTE),
    ]
    lines = [
        "## Targets",
        "",
        "The targets of the second performance round, each with the figure "
        "that decides it.",
        "",
        "| target | status | figure |",
        "|---|---|---|",
    ]
    for target, status, figure in rows:
        lines.append(f"| {target} | {status} | {figure} |")
    return [*lines, ""]


def _met(ok):
    return "**met**" if ok else "not met"


def _loops_target(layer, search=None):
    target = (
        "`fine_tune` / `StagedFineTuner` / search trials at ≥ 0.98x a "
        "hand-written `tf.function` loop (tiny, text, MobileNet)"
    )
    rows = (layer or {}).get("loops")
    if not rows:
        return target, "not measured", "`bench_layer.py` has not run"
    loops = [r for r in rows if not r.get("what_if")]
    worst = min(loops, key=lambda r: r["vs_raw_run"]["ratio"])
    epochs = [r for r in loops if r.get("vs_raw_epoch")]
    worst_epoch = min(epochs, key=lambda r: r["vs_raw_epoch"]["ratio"])
    ok = worst["vs_raw_run"]["ratio"] >= 0.98
    hand = (search or {}).get("vs_hand_written")
    status = _met(ok and (hand is None or hand["ratio"] >= 0.98))
    if status == "not met" and worst_epoch["vs_raw_epoch"]["ratio"] >= 0.98:
        status = (
            "not met per run; **met** per steady epoch by the package's "
            "loops (search trials: per trial only)"
        )
    return (
        target,
        status,
        f"per run, compiling included, worst: {worst['loop']} on "
        f"{worst['model']}, {_common.fmt_ratio(worst['vs_raw_run'])}; per "
        f"steady epoch, worst: {worst_epoch['loop']} on "
        f"{worst_epoch['model']}, "
        f"{_common.fmt_ratio(worst_epoch['vs_raw_epoch'])} (see *Training "
        "loops*)"
        + _what_if_clause(rows, worst)
        + (
            f"; search trials on cached features "
            f"{_common.fmt_ratio(hand)} a hand-written loop (see *Search*)"
            if hand
            else ""
        ),
    )


def _what_if_clause(rows, worst):
    """What a train step of our own would reach on the worst loop's model,
    when the what-if row measured it."""
    model = worst["model"]
    bare = [r for r in rows if r.get("what_if") and r["model"] == model]
    staged = [
        r
        for r in rows
        if r["model"] == model and r["loop"] == "StagedFineTuner"
    ]
    if not bare or not staged:
        return ""
    return (
        "; with a `train_step` stripped of Keras's loss container, loss "
        "tracker and metric results (what-if), `StagedFineTuner` on "
        f"{model} runs at {_common.fmt_ratio(bare[0]['vs_raw_run'])} "
        f"against {_common.fmt_ratio(staged[0]['vs_raw_run'])} as the "
        "package runs it: the rest is `compile`'s and `fit`'s own cost per "
        "stage, which only leaving `fit` would save"
    )


def _fit_row(layer, kind="fit"):
    for row in (layer or {}).get("cases", []):
        if row["model"].startswith("image") and row["kind"] == kind:
            if row["batch"] == 32:
                return row
    return None


def _fit_finding(layer):
    target = "Why MobileNet `fit` with HubLayer trailed TFSMLayer"
    row = _fit_row(layer)
    steady = _fit_row(layer, "fit, autotune off")
    if row is None or steady is None or "raw_no_bn" not in row["ms"]:
        return target, "not measured", "`bench_layer.py` has not run"
    ms, vs, cpu = row["ms"], row["vs"], row.get("vs_cpu", {})
    bn_cost = ms["raw"] / ms["raw_no_bn"]
    fixed = steady["vs"]["raw"]["ratio"] >= 0.95
    text = (
        f"With tf.data's autotuner on (Keras's default), HubLayer "
        f"{_common.fmt_ratio(vs['raw'])} the floor in wall time but "
        f"{_common.fmt_ratio(cpu['raw'])} in CPU time"
        + (
            f", TFSMLayer {_common.fmt_ratio(vs['tfsm'])}"
            if "tfsm" in vs
            else ""
        )
        + f"; with it off, HubLayer {_common.fmt_ratio(steady['vs']['raw'])}"
        + (
            f", TFSMLayer {_common.fmt_ratio(steady['vs']['tfsm'])}"
            if "tfsm" in steady["vs"]
            else ""
        )
        + ". Keras reads the dataset's iterator inside its compiled step, "
        "and with the autotuner on the step's kernels now and then get one "
        "thread for a whole call (twice the wall time for the same CPU "
        "time), whichever layer runs: the gap was waiting, not work. "
        "`StagedFineTuner` and the recipes feed pipelines with the "
        "autotuner off. TFSMLayer also skips BatchNorm's batch statistics "
        f"and updates, which make the floor itself {bn_cost:.2f}x slower. "
        + _retrace_text(row)
        + f" ({row['repeats']} interleaved calls each)"
    )
    return target, "**explained**" if fixed else "partly explained", text


def _retrace_text(row):
    counts = row.get("traces", {})
    if counts.get("hubkit") is None:
        return "Retracing was not counted."
    if counts["hubkit"] == 1:
        return "HubLayer's train step is traced once for all its `fit` calls."
    return f"HubLayer's train step was traced {counts['hubkit']} times."


def _search_target(data):
    target = (
        "Search: ≥ 20 trials, 5 epochs, ≥ 1,000 images; cached trials ≥ 10x "
        "faster per trial, same best score; fixed cost in ms"
    )
    if not data or "fixed_ms" not in data:
        return target, "not measured", "`bench_search.py` has not run"
    speed = data["speedup"]
    same = data["max_score_difference"] <= 1e-4 * max(
        1.0, abs(data["best_score"]["uncached"])
    )
    ok = (
        data["trials"] >= 20
        and data["epochs"] >= 5
        and data["examples"] >= 1000
        and speed["ratio"] >= 10
        and same
    )
    return (
        target,
        _met(ok),
        f"{data['trials']} trials x {data['epochs']} epochs on "
        f"{data['examples']} images: {_common.fmt_ratio(speed)} faster per "
        f"trial; scores differ by ≤ {data['max_score_difference']:.1e}; "
        f"fixed cost {data['fixed_ms']['median']:.0f} ms per trial",
    )


def _startup_target(data):
    target = "`import keras_hubkit` ≤ 1.1x `import keras`"
    if not data:
        return (target, "not measured", "`bench_startup.py` has not run")
    r = data["time_ratio"]["import keras, keras_hubkit"]
    return (
        target,
        _met(r["ratio"] <= 1.1),
        f"`import keras, keras_hubkit` takes {_common.fmt_ratio(r)} the time "
        f"of `import keras` ({data['repeats']} fresh interpreters each)",
    )


def _warm_load_target(data):
    target = "Warm `hk.load` ≤ 1.05x a bare `tf.saved_model.load`"
    if not data:
        return target, "not measured", "`bench_load.py` has not run"
    r = data["warm_speed_ratio"]
    return (
        target,
        _met(r["ratio"] >= 1 / 1.05),
        f"speed {_common.fmt_ratio(r)} of the bare load "
        f"({data.get('repeats', '?')} interleaved loads each)",
    )


# ------------------------------------------------------------------ layer
def _layer_section(layer):
    lines = [
        "## HubLayer against its peers",
        "",
        "`python benchmarks/bench_layer.py`. Milliseconds per call (median "
        "of *n* interleaved calls); *vs raw* and *vs hub* are HubLayer's "
        "speed relative to the raw `tf.saved_model.load` + `tf.function` "
        "floor and to `tf_keras` + `hub.KerasLayer` (> 1: HubLayer is "
        "faster), with the spread from the interquartile ranges; *CPU* is "
        "the same ratio in process CPU time, steadier on a shared machine. "
        "`predict` is `predict_on_batch`, `train` is `train_on_batch`, "
        "`fit` is one epoch of 5 steps. *raw, no BN* is the floor calling "
        "the model with `training=False` (no batch statistics, no "
        "BatchNorm updates): the work TFSMLayer does.",
        "",
        "| model | batch | kind | n | raw | raw, no BN | HubLayer | TFSMLayer "
        "| hub.KerasLayer | vs raw | vs raw (CPU) | vs hub |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in layer["cases"]:
        ms, vs = row["ms"], row["vs"]
        hub = vs.get("tf_keras+hub")
        cpu = row.get("vs_cpu", {}).get("raw")
        lines.append(
            f"| {row['model']} | {row['batch']} | {row['kind']} | "
            f"{row.get('repeats', '—')} | "
            f"{ms.get('raw', 0):.2f} | {_cell(ms.get('raw_no_bn'))} | "
            f"{ms.get('hubkit', 0):.2f} | "
            f"{_cell(ms.get('tfsm'))} | {_cell(ms.get('tf_keras+hub'))} | "
            f"{_common.fmt_ratio(vs['raw'])} | "
            f"{_common.fmt_ratio(cpu) if cpu else '—'} | "
            f"{_common.fmt_ratio(hub) if hub else '—'} |"
        )
    lines += [
        "",
        "What each path does when fine-tuning (one train step):",
        "",
        "| model | path | trainable weights | statistics updated | "
        "regularization losses counted |",
        "|---|---|---|---|---|",
    ]
    for model, paths in layer.get("correctness", {}).items():
        for path, c in paths.items():
            if "error" in c:
                lines.append(
                    f"| {model} | {path} | cannot run: {c['error'][:60]} | | |"
                )
                continue
            lines.append(
                f"| {model} | {path} | {c['trainable_weights']} of "
                f"{c['publisher_trainable']} | {c['statistics_updated']} of "
                f"{c['statistics']} | {c['regularization_losses']} of "
                f"{c['publisher_losses']} |"
            )
    return [*lines, "", _layer_findings(layer), ""]


def _layer_findings(layer):
    worst = min(
        (r for r in layer["cases"]), key=lambda r: r["vs"]["raw"]["ratio"]
    )
    met = [r for r in layer["cases"] if r["vs"]["raw"]["ratio"] >= 0.98]
    return (
        f"At ≥ 0.98x the raw call: {len(met)} of {len(layer['cases'])} "
        "cases. The gap elsewhere is Keras's own per-call machinery "
        "(`train_on_batch`/`fit` build logs, metrics and callbacks; "
        "TFSMLayer pays it too) plus the work the peers skip: HubLayer runs "
        "the SavedModel in training mode, so BatchNorm statistics update, "
        "and adds the regularization losses. Worst case: "
        f"{worst['model']}, batch {worst['batch']}, {worst['kind']}: "
        f"{_common.fmt_ratio(worst['vs']['raw'])}."
    )


def _startup_section(data):
    ms = {k: v["median"] * 1000 for k, v in data["seconds"].items()}
    r = data["time_ratio"]
    return [
        "## Start-up",
        "",
        "`python benchmarks/bench_startup.py`: fresh interpreters, in turns, "
        f"{data['repeats']} runs each; time ratios to `import keras` "
        "(< 1: cheaper).",
        "",
        "| command | ms (median) | time vs `import keras` |",
        "|---|---|---|",
        *[
            f"| `{name}` | {ms[name]:.0f} | "
            + (_common.fmt_ratio(r[name]) if name in r else "1.00x")
            + " |"
            for name in data["seconds"]
        ],
        "",
        "`import keras_hubkit` loads names on first use, so alone it costs "
        "the interpreter's start; after `import keras` it loads the library "
        f"at once: {_common.fmt_ratio(r['import keras, keras_hubkit'])} the "
        "time of `import keras` (target ≤ 1.1x). `hubkit --help` imports no "
        f"TensorFlow: {ms['hubkit --help']:.0f} ms (target < 1 s). "
        f"`{IMPORTTIME}` shows what remains.",
        "",
    ]


def _loops_section(layer):
    loops = layer.get("loops")
    if not loops:
        return []
    lines = [
        "## Training loops",
        "",
        "`python benchmarks/bench_layer.py`, the package's own loops against "
        "a hand-written loop on the same model and data "
        "(`tf.saved_model.load`, a Dense head, Keras's Adam, a "
        "`tf.function` step, one step per call, over a shuffled (in a "
        "buffer of the whole data), batched, prefetched `tf.data` pipeline "
        "made from the same arrays with tf.data's autotuner off, as the "
        "package's, the SavedModel's regularization losses added; no "
        "validation). `StagedFineTuner`: one stage, "
        'everything trained at one rate, `bn_policy="train"` (BatchNorm '
        "statistics update: the loop calls the model with "
        "`training=True`). `fine_tune`: fastai's defaults, one head epoch "
        "then everything with BatchNorm frozen; the loop does the same in "
        "two traced steps, with the same optimization: a one-cycle rate "
        "written in TensorFlow, and in the second stage one Adam per "
        "variable group, rates spread geometrically as `fine_tune`'s "
        "(until this pass it trained at one constant rate, less work than "
        "`fine_tune` does, and the `fine_tune` rows read lower). A run "
        "includes making the pipeline and compiling "
        "(each package run compiles, each loop run traces afresh); a steady "
        "epoch is any epoch after a stage's first. Ratios: the loop's "
        "speed relative to the hand-written one (> 1: faster), with the "
        "spread; *n*: runs of each, interleaved. The *what-if* row is not "
        "what the package runs: `StagedFineTuner` on a model whose "
        "`train_step` is stripped of Keras's loss container, its "
        "sample-weighted loss tracker and its metric results (the forward "
        "pass, the loss plus the layers' losses, the gradient, the "
        "optimizer, a plain mean of the loss: `_BareStepModel`), to "
        "measure how much of the gap a train step of our own could close.",
        "",
        "| model | loop | examples | batch | epochs | n | run ms (raw) "
        "| vs raw, run | vs raw, run (CPU) | vs raw, steady epoch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in loops:
        raw = row.get("raw", f"raw {row['loop']}")
        epoch = row.get("vs_raw_epoch")
        lines.append(
            f"| {row['model']} | {row['loop']} | {row['examples']} | "
            f"{row['batch']} | {row['epochs']} | {row['repeats']} | "
            f"{row['run_ms'][row['loop']]:.0f} ({row['run_ms'][raw]:.0f}) | "
            f"{_common.fmt_ratio(row['vs_raw_run'])} | "
            f"{_common.fmt_ratio(row['vs_raw_run_cpu'])} | "
            f"{_common.fmt_ratio(epoch) if epoch else '—'} |"
        )
    return [*lines, "", *_LOOPS_NOTE, *_what_if_lines(loops), ""]


def _what_if_lines(loops):
    """What the what-if rows say about a train step of our own."""
    package = {
        (r["model"], r["loop"]): r for r in loops if not r.get("what_if")
    }
    said = []
    for row in loops:
        base = package.get((row["model"], "StagedFineTuner"))
        if row.get("what_if") and base:
            said.append(
                f"{row['model']}: {_common.fmt_ratio(row['vs_raw_run'])} "
                f"against the package's "
                f"{_common.fmt_ratio(base['vs_raw_run'])}"
            )
    if not said:
        return []
    return [
        "",
        "The *what-if* rows show how much of that a train step of our own "
        "would win back, per run: " + "; ".join(said) + ". The rest is "
        "`compile` and `fit` themselves; reaching the hand-written loop on "
        "runs this short would mean leaving `fit` (its callbacks, "
        "validation, steps per call and distribution strategies), which "
        "the package does not do.",
    ]


# What the loop rows show, and why (measured while writing the runner;
# the figures above are the current run's).
_LOOPS_NOTE = [
    "What the package's loops do to run at the hand-written loop's speed "
    "(*Parts of the training loop* below measures each against its "
    "alternative): each stage traces its train step once (the optimizer's "
    "and metrics' variables are created before `fit` traces it; created "
    "inside, they made TensorFlow trace MobileNet V3's step twice, about "
    "5 s more per stage); with one step per call, `fit` and `evaluate` get "
    "lean step functions (one `tf.function` that reads the batch and "
    "calls the model's `train_step`, where Keras's own nest two, run them "
    "through the distribution strategy and unwrap an `Optional` after "
    "every call); training and validation arrays are fed through a "
    "prefetched `tf.data` pipeline with tf.data's autotuner off (with it "
    "on, whole epochs ran on one thread now and then), shuffled in a "
    "buffer when small; and a stage runs several steps per call only when "
    "its steps save more than Keras's step loops cost to compile (here "
    "only the tiny model's `StagedFineTuner` stage, 384 steps).",
    "",
    "What is left is Keras's own cost per stage, paid by every "
    "`model.fit`: `compile`, and a `train_step` that takes longer to "
    "trace and to run for the first time than a bare `tf.function` step "
    "(its loss container, loss tracker and metric results add about a "
    "third more operations to the step's graph: *Parts of the training "
    "loop* measures it), per stage, where a run of the small models is a "
    "few hundred milliseconds. `fine_tune` pays it twice (two stages). Runs "
    "of a few epochs are mostly compiling, so the per-run ratios are the "
    "worst case; longer runs approach the steady-epoch ratios.",
]


def _loop_parts_section(data):
    variants = data["variants"]
    lines = [
        "## Parts of the training loop",
        "",
        "`python benchmarks/bench_loop_parts.py`: one-stage, one-epoch "
        "`StagedFineTuner` runs with validation arrays, at two epoch "
        "lengths, in turns: the default (one step per call, the lean step "
        "functions, small arrays shuffled in a buffer, validation arrays "
        "through the same pipeline) against each alternative. Each "
        "alternative costs `fixed + per_step * steps` more than the "
        "default (negative: it saves); the two lengths give both terms. "
        "For "
        f"{data['spe']} steps per call, the fixed cost is compiling Keras's "
        "step loops (train and validation), which the runner predicts from "
        "the variables the steps carry (weights and optimizer slots); with "
        '`steps_per_execution="auto"` a stage runs several steps per call '
        "only when its steps times the assumed saving per step exceed the "
        "predicted cost.",
        "",
        "| model (batch; steps per epoch) | n | alternative | ms per run "
        "| ms per step |",
        "|---|---|---|---|---|",
    ]
    for row in data["rows"]:
        for key, extra in row["extra"].items():
            lines.append(
                f"| {row['model']} ({row['batch']}; "
                f"{' and '.join(str(s) for s in row['steps'])}) | "
                f"{row['repeats']} | {variants[key]} | "
                f"{extra['fixed_ms']:+.0f} | {extra['per_step_ms']:+.2f} |"
            )
    lines.append("")
    for row in data["rows"]:
        loop = row["extra"]["steps_per_call"]
        saved = -loop["per_step_ms"]
        pays = (
            f"pays from about {loop['fixed_ms'] / saved:.0f} steps"
            if saved > 0 and loop["fixed_ms"] > 0
            else "never pays here"
        )
        lines.append(
            f"- {row['model']}: {data['spe']} steps per call cost "
            f"{loop['fixed_ms']:.0f} ms to compile (the runner predicts "
            f"{row['predicted_wrap_ms']:.0f} ms for the "
            f"{row['carried_variables']} variables its train step carries "
            f"and its test step) and save {saved:.2f} ms "
            f"per step (the runner assumes "
            f"{row['assumed_saved_ms_per_step']}): {pays}."
        )
    return [*lines, "", *_step_graph_lines(data.get("steps") or [])]


def _step_graph_lines(rows):
    """What is left against a hand-written loop: the step itself."""
    if not rows:
        return []
    lines = [
        "What is left against a hand-written loop is the step `fit` "
        "traces: Keras's `train_step` (its loss container, loss tracker "
        "and metric results) against the hand-written loop's step of "
        "*Training loops* (the same model, loss and Adam), each made afresh "
        "as every stage makes it, taking turns; medians.",
        "",
        "| model | n | step | operations | trace ms | first run ms |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        for key, label in (
            ("keras train_step", "Keras's `train_step`"),
            ("hand-written step", "hand-written step"),
        ):
            d = row[key]
            lines.append(
                f"| {row['model']} | {row['repeats']} | {label} | {d['ops']} | "
                f"{d['trace_ms']:.0f} | {d['first_run_ms']:.0f} |"
            )
    return [*lines, ""]


def _autotune_section(data):
    on, off = data["on"], data["off"]
    return [
        "## tf.data's autotuner",
        "",
        "`python benchmarks/bench_autotune.py`: a MobileNet V3 fine-tuning "
        "step that reads its batch from the iterator it is given (as "
        "Keras's `fit` does), one epoch of 4 batches at a time, with the "
        f"autotuner on and off, in {data['processes']} fresh processes "
        f"each, taking turns, {data['epochs_per_process']} epochs per "
        "process. A slow epoch takes over 1.5x the median epoch with the "
        "autotuner off.",
        "",
        "| autotuner | epochs | slow epochs | epoch s, median (p25-p75) "
        "| CPU s, median |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {d['epochs']} | {d['slow_epochs']} | "
            f"{d['wall_s']['median']:.2f} ({d['wall_s']['p25']:.2f}-"
            f"{d['wall_s']['p75']:.2f}) | {d['cpu_s']['median']:.2f} |"
            for name, d in (("on", on), ("off", off))
        ),
        "",
        "The slow epochs come and go: when they come, they take twice the "
        "wall time for the same CPU time (the step's kernels waiting for a "
        "thread). The pipelines the package builds turn the autotuner off "
        "either way.",
        "",
    ]


def _load_section(data):
    cold = data["cold"]
    r = data["warm_speed_ratio"]
    return [
        "## Loading",
        "",
        "`python benchmarks/bench_load.py` (MobileNet V3).",
        "",
        f"- Warm `hk.load` (resolve + scan + load) runs at "
        f"{_common.fmt_ratio(r)} the speed of a bare `tf.saved_model.load` "
        f"(target ≥ 0.95x, i.e. ≤ 1.05x the time; "
        f"{data.get('repeats', '?')} interleaved loads each); the scan alone "
        "takes "
        f"{data['scan_ms']:.0f} ms and runs once per process.",
        f"- Cold download of the {cold['archive_mb']:.1f} MB archive from a "
        f"loopback server: {cold['resolve_ms']:.0f} ms against "
        f"{cold['raw_ms']:.0f} ms for reading the same bytes raw "
        f"({cold['rate_ratio']:.2f}x the raw rate; target 0.8x). On loopback "
        "the raw read is nearly free, so the ratio is the cost of "
        "decompressing, checking and writing the files — about "
        f"{cold['resolve_ms'] - cold['raw_ms']:.0f} ms here. "
        "Over a real network link that cost is small against the transfer.",
        "",
    ]


def _search_section(data):
    if "fixed_ms" not in data:
        return []
    s = data["seconds_per_trial"]
    partial = data["uncached_trials"] < data["trials"]
    return [
        "## Search",
        "",
        "`python benchmarks/bench_search.py`: a head-only keras-tuner "
        f"GridSearch on MobileNet V3 (head width and depth, label smoothing): "
        f"{data['trials']} trials of {data['epochs']} epochs, batch "
        f"{data['batch_size']}, {data['examples']} training and "
        f"{data['validation_examples']} validation images.",
        "",
        f"- Cached features: {s['cached']['median'] * 1e3:.0f} ms per trial "
        f"(median of {s['cached']['n']} trials after the first, which also "
        f"runs the base once over the data: +{data['feature_pass_seconds']:.1f}"
        f" s; {s['cached_whole_search']:.2f} s per trial over the whole "
        "search).",
        f"- Uncached: {s['uncached']['median']:.2f} s per trial (median of "
        f"{s['uncached']['n']} trials"
        + (
            f": the first {data['uncached_trials']} trials of the same grid "
            "were run uncached, for time; the per-trial time is measured, "
            "not extrapolated"
            if partial
            else ""
        )
        + ").",
        f"- Cached trials are **{_common.fmt_ratio(data['speedup'])} "
        f"faster** per trial ({data['speedup_with_feature_pass']:.1f}x "
        "counting the feature pass; target 10x). The trials run both ways "
        f"score the same (largest difference "
        f"{data['max_score_difference']:.1e}; best "
        f"{data['best_score']['uncached']:.4f} uncached, "
        f"{data['best_score']['cached']:.4f} cached), and the model "
        "`get_best_models` returns re-evaluates to its trial's best score "
        f"({data['best_model_evaluation']:.4f}).",
        f"- Fixed cost of a cached trial (its time beyond {data['epochs']} "
        f"steady epochs of {data['steady_epoch_ms']:.0f} ms): "
        f"**{data['fixed_ms']['median']:.0f} ms** "
        f"({data['fixed_ms']['p25']:.0f}-{data['fixed_ms']['p75']:.0f}"
        + "".join(
            f"; {_SHAPES[k]}: {v['median']:.0f} ms, n={v['n']}"
            for k, v in data.get("fixed_ms_by_head_shape", {}).items()
        )
        + "): building the trial's model, compiling a head of a new shape "
        "(a head shape seen before reuses its compiled functions), keras-"
        "tuner's bookkeeping and its one checkpoint. keras-tuner's session "
        "reset, which it runs before every trial "
        f"({data['cleanup_ms']['median']:.0f} ms here), is skipped for "
        "these trials.",
        *_hand_written_line(data),
        f"- Rebuilding a MobileNet HubLayer per trial costs "
        f"{data['rebuild_seconds']:.2f} s; trials never re-download "
        "(disk cache) nor re-scan (the scan report is reused).",
        "",
    ]


def _hand_written_line(data):
    if "vs_hand_written" not in data:
        return []
    hand = data["seconds_per_trial_hand_written"]
    return [
        "- Against a hand-written loop over the same cached features (per "
        "trial: the same head, Keras's Adam, a `tf.function` step over a "
        "shuffled, prefetched `tf.data` pipeline, a validation loss every "
        f"epoch; {hand['median'] * 1e3:.0f} ms per trial), cached trials run "
        f"at **{_common.fmt_ratio(data['vs_hand_written'])}** its speed "
        f"(n={hand['n']} trials each, after the first), keras-tuner's "
        "bookkeeping and checkpoints included." + _by_shape(data, hand)
    ]


def _by_shape(data, hand):
    shapes = data.get("fixed_ms_by_head_shape", {})
    if set(shapes) != {"new_shape", "seen_shape"}:
        return ""
    epochs = data["epochs"] * data["steady_epoch_ms"]
    seen = shapes["seen_shape"]["median"] + epochs
    new = shapes["new_shape"]["median"] + epochs
    return (
        f" By head shape: a trial whose head shape was seen before takes "
        f"about {seen:.0f} ms ({hand['median'] * 1e3 / seen:.2f}x the "
        f"hand-written loop's speed); a new shape about {new:.0f} ms "
        f"({hand['median'] * 1e3 / new:.2f}x): its head's train and "
        "validation functions are traced (Keras's `train_step` and "
        "`test_step`, heavier to trace than the hand-written loop's step), "
        "where a seen shape reuses them."
    )


_SHAPES = {
    "new_shape": "trials with a new head shape",
    "seen_shape": "with a head shape seen before",
}


def _quality_section(data):
    import bench_quality

    return bench_quality.render_section(data)


def _memory_section(data):
    return [
        "## Memory",
        "",
        "`python benchmarks/bench_memory.py`: peak RSS of 10 MobileNet V3 "
        f"training steps, each path in its own process: HubLayer "
        f"{min(data['peak_mb']['hubkit']):.0f} MB, raw "
        f"{min(data['peak_mb']['raw']):.0f} MB ({data['ratio']:.2f}x, the "
        f"lowest of {len(data['peak_mb']['raw'])} runs each; target ≤ 1.1x). "
        "The difference is Keras itself (importing it and its trainer).",
        "",
    ]


def _cell(value):
    return f"{value:.2f}" if value is not None else "—"


if __name__ == "__main__":
    main()
