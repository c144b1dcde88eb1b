"""Runs every benchmark, then writes the results page (docs/benchmarks.md).

    python benchmarks/run_all.py            # every script, then the page
    python benchmarks/run_all.py --quick    # a first look (see below)
    python benchmarks/run_all.py --report   # the page from results/*.json

A full run takes about 50 minutes on 2 CPUs; the page gives each
section's run time. `--quick` runs every script with fewer repetitions into
benchmarks/results/quick/ and writes its page there
(benchmarks/results/quick/benchmarks.md): quick results never reach
docs/benchmarks.md. The MobileNet V3 benchmarks need the real models
(HUBKIT_REAL_MODELS).
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
    "bench_precision.py",
]
PAGE = os.path.join(_common.ROOT, "docs", "benchmarks.md")
IMPORTTIME = (
    'python -X importtime -c "import keras_hubkit, keras_hubkit.hub_layer"'
)
# Why the page may have no GPU rows.
GPU_NOTE = (
    "No GPU rows: no machine with a GPU has run these scripts. On one, "
    "`python benchmarks/bench_precision.py` measures predict, train and "
    "`fit` with and without `jit_compile`, for HubLayer and TFSMLayer "
    "under the float32 and `mixed_float16` policies and for the raw "
    "floor (float32 only: the SavedModel computes in float32 in every "
    "path). Without a GPU it measures the tiny model alone, on the CPU "
    "(*Precision and XLA*, where it ran)."
)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help=_common.QUICK_HELP)
    parser.add_argument(
        "--report",
        action="store_true",
        help="run nothing: rebuild the page from the saved results",
    )
    args = parser.parse_args(argv)
    failed = []
    if not args.report:
        for script in SCRIPTS:
            command = [sys.executable, os.path.join(_common.HERE, script)]
            if args.quick:
                command.append("--quick")
            print("$", " ".join(command), flush=True)
            code = subprocess.run(command).returncode
            if code:
                failed.append(f"{script} (exit status {code})")
    folder = _common.results_folder(args.quick)
    page = os.path.join(folder, "benchmarks.md") if args.quick else PAGE
    write_page(folder, page)
    if failed:
        sys.exit(
            "These benchmarks failed, and the page keeps their earlier "
            "results (if any): " + ", ".join(failed)
        )


def _load(name, folder=None):
    path = os.path.join(folder or _common.RESULTS, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_page(folder=None, page=PAGE):
    """The results page from the results in `folder`."""
    data = {name: _load(name, folder) for name in SCRIPT_RESULTS}
    # bench_precision.py keeps a GPU run's results beside the CPU's.
    data["precision_gpu"] = _load("precision_gpu", folder)
    lines = [
        "# Benchmarks",
        "",
        "Every figure comes from a script in `benchmarks/`; each section "
        "names its script, the command of the run it comes from, when that "
        "run finished and how long it took. Comparisons are "
        "ratios of medians, the cases taking turns (A B A B ...) because "
        "these machines are noisy: in one process, or in fresh processes "
        "for start-up and memory (the search is the exception: see its "
        "section); with their spread (low-high: the "
        "ratio's range over the interquartile ranges of both sides) and "
        "the number of repetitions (*n*). Where a section uses another "
        "statistic (memory: the lowest of a few runs; the autotuner: "
        "counts of slow epochs) it says so. The scripts measure the "
        "checkout they live in. Reproduce everything with:",
        "",
        "```bash",
        'pip install -e ".[test,bench]"   # bench: tf_keras, '
        "tensorflow_hub, scikit-image",
        "export HUBKIT_REAL_MODELS=...    # the real models "
        "(benchmarks/README.md)",
        "python benchmarks/run_all.py",
        "```",
        "",
        "tf-keras follows TensorFlow's version: install the one that "
        "matches yours, or pip may replace TensorFlow. Each section's "
        "*Run:* line gives the command that made it (`run_all.py` runs "
        "each script's defaults; `bench_layer.py --loops-only` measures "
        "the training loops again and keeps the rest).",
        "",
        *_machine(data),
        *_targets_section(data),
    ]
    sections = (  # (results name, renderer), in the page's order
        ("layer", _layer_section),
        ("layer", lambda layer: _loops_section(layer, data["loop_parts"])),
        ("startup", _startup_section),
        ("load", _load_section),
        ("search", _search_section),
        ("quality", _quality_section),
        ("memory", _memory_section),
        ("loop_parts", _loop_parts_section),
        ("autotune", _autotune_section),
        ("precision", _precision_section),
        ("precision_gpu", _precision_section),
    )
    for name, render in sections:
        if data[name]:
            lines += render(data[name])
    os.makedirs(os.path.dirname(page), exist_ok=True)
    with open(page, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {page}")


# The results each script writes: bench_<name>.py, results/<name>.json.
SCRIPT_RESULTS = tuple(s[len("bench_") : -len(".py")] for s in SCRIPTS)


def _machine(data):
    """The machines the runs on the page were made on."""
    found = []
    for d in data.values():
        if d:
            env = d["environment"]
            gpu = ", GPU " + ", ".join(env["gpu"]) if env["gpu"] else ", no GPU"
            # Older results repeat the architecture as the processor.
            arch = " ".join(dict.fromkeys(env["machine"].split()))
            machine = f"{arch}, {env['cpus']} CPUs{gpu}"
            if machine not in found:
                found.append(machine)
    if not found:
        return []
    if len(found) == 1:
        return [f"Machine: {found[0]}.", ""]
    return [
        "Machines (a section's *Run:* line names its GPU, if any): "
        + "; ".join(found)
        + ".",
        "",
    ]


def _run(env, peers=False):
    """Which run a section comes from: the command, its date and length,
    the versions that matter (tf_keras and tensorflow_hub where the
    section compares against them)."""
    v = env["versions"]
    versions = (
        f"Python {v['python']}, TensorFlow {v['tensorflow']}, Keras "
        f"{v['keras']}"
    )
    if peers:
        versions += (
            f", tf_keras {v.get('tf_keras') or 'not installed'}, "
            f"tensorflow_hub {v.get('tensorflow_hub') or 'not installed'}"
        )
    took = f", took {_duration(env['seconds'])}" if env.get("seconds") else ""
    if env.get("gpu"):
        versions += "; GPU " + ", ".join(env["gpu"])
        if v.get("cuda"):
            cudnn = f", cuDNN {v['cudnn']}" if v.get("cudnn") else ""
            versions += f" (TensorFlow built for CUDA {v['cuda']}{cudnn})"
    command = _script(env["command"])
    return (
        f"*Run:* `python {command}`, finished {env['date']}{took}; {versions}."
    )


def _script(command):
    """The command as run from the repository's root."""
    parts = command.split()
    name = os.path.basename(parts[0]) if parts else ""
    return " ".join([f"benchmarks/{name}", *parts[1:]])


def _duration(seconds):
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


# ---------------------------------------------------------------- targets
def _targets_section(data):
    """The targets of both performance rounds, each with the figure that
    decides it (or why there is none)."""
    layer, search = data["layer"], data["search"]
    rows = [
        _loops_target(layer, search, data.get("loop_parts")),
        _fit_finding(layer, data["autotune"]),
        _search_target(search),
        _startup_target(data["startup"]),
        _warm_load_target(data["load"]),
        _gpu_target(data),
        _per_call_target(layer),
        _cold_download_target(data["load"]),
        _memory_target(data["memory"]),
        _help_target(data["startup"]),
    ]
    lines = [
        "## Targets",
        "",
        "The targets of the performance rounds, each with the figure that "
        "decides it (rows marked *First round* are the first round's, the "
        "others the second's). **met** (or **explained**): the whole "
        "spread is on the target's side; *met by the median* (*explained "
        "by the median*): the median is, and the spread crosses the "
        "target, so this run cannot decide it; *not met*: the median is "
        "not.",
        "",
        "| target | status | figure |",
        "|---|---|---|",
    ]
    for target, status, figure in rows:
        lines.append(f"| {target} | {status} | {figure} |")
    return [*lines, ""]


def _verdict(r, target, at_least=True):
    """Met by the whole spread, by the median only, or not met."""
    low, mid, high = r["low"], r["ratio"], r["high"]
    whole = low >= target if at_least else high <= target
    median = mid >= target if at_least else mid <= target
    if whole:
        return "**met**"
    if median:
        return "*met by the median*"
    return "not met"


def _loops_target(layer, search=None, parts=None):
    target = (
        "`fine_tune` / `StagedFineTuner` / search trials at ≥ 0.98x a "
        "hand-written `tf.function` loop (tiny, text, MobileNet)"
    )
    loops = [
        r for r in (layer or {}).get("loops") or [] if not r.get("what_if")
    ]
    gaps = (parts or {}).get("gaps") or []
    longer = _longer_runs(loops, gaps, (search or {}).get("vs_hand_written"))
    # The small models' sub-second runs of *Training loops* show the fixed
    # cost of a stage.
    short = [r for r in loops if not r["model"].startswith("image")]
    verdicts, figures = {}, []
    if longer:
        verdicts["on stages of seconds"] = min(
            (_verdict(r, 0.98) for _, r in longer), key=_VERDICTS.index
        )
        figures.append(
            "stages of seconds (MobileNet's runs of *Training loops*, the "
            "small models' longer stages of *Parts of the training loop*, "
            "search trials of *Search*; the status is the worst of these): "
            + "; ".join(f"{name}, {_common.fmt_ratio(r)}" for name, r in longer)
        )
    if short:
        worst = min(short, key=lambda r: r["vs_raw_run"]["ratio"])
        verdicts["on sub-second runs"] = _verdict(worst["vs_raw_run"], 0.98)
        figures.append(
            "Sub-second runs (*Training loops*), worst: "
            f"{worst['loop']} on {worst['model']}, "
            f"{_common.fmt_ratio(worst['vs_raw_run'])}"
        )
    if not verdicts:
        return (
            target,
            "not measured",
            "`bench_layer.py` and `bench_loop_parts.py` have not run",
        )
    if len(set(verdicts.values())) == 1:
        status = next(iter(verdicts.values()))
    else:
        status = "; ".join(f"{v} {k}" for k, v in verdicts.items())
    return target, status, ". ".join(figures) + _per_stage_cost(gaps)


def _longer_runs(loops, gaps, search_trials):
    """(name, ratio) of the loops' runs with stages of seconds."""
    longer = [
        (f"{r['loop']} on {r['model']}", r["vs_raw_run"])
        for r in loops
        if r["model"].startswith("image")
    ]
    for row in gaps:
        stage = row["long_stage"]
        longer += [
            (f"StagedFineTuner on {row['model']}", stage["ratio"]),
            (f"fine_tune on {row['model']}", stage["fine_tune_ratio"]),
        ]
    if search_trials:
        longer.append(("search trials on cached features", search_trials))
    return longer


def _per_stage_cost(gaps):
    """Why the short runs fall short: the package's fixed cost per stage."""
    if not gaps:
        return ""
    return (
        "; what the package pays beyond the loop, per stage: "
        + ", ".join(
            f"{row['model']} {_term(row['per_stage_ms'], 0)} ms" for row in gaps
        )
        + "; per epoch: "
        + ", ".join(
            f"{row['model']} {_term(row['per_epoch_ms'], 2)} ms" for row in gaps
        )
    )


def _term(spread, digits):
    """A per-round estimate's median and interquartile range."""
    return (
        f"{spread['median']:+.{digits}f} ({spread['p25']:+.{digits}f} to "
        f"{spread['p75']:+.{digits}f})"
    )


# Worst first: the loops target is as met as its worst figure.
_VERDICTS = ["not met", "*met by the median*", "**met**"]


def _overlap(a, b):
    return a["low"] <= b["high"] and b["low"] <= a["high"]


def _fit_row(layer, kind="fit"):
    for row in (layer or {}).get("cases", []):
        if row["model"].startswith("image") and row["kind"] == kind:
            if row["batch"] == 32:
                return row
    return None


def _fit_finding(layer, autotune=None):
    target = "Why MobileNet `fit` with HubLayer trailed TFSMLayer"
    row = _fit_row(layer)
    steady = _fit_row(layer, "fit, autotune off")
    if row is None or steady is None or "raw_no_bn" not in row["ms"]:
        return target, "not measured", "`bench_layer.py` has not run"
    ms, vs, cpu = row["ms"], row["vs"], row.get("vs_cpu", {})
    if "tfsm" not in vs or "raw" not in cpu:
        return target, "not measured", "TFSMLayer or CPU time not measured"
    bn_cost = ms["raw"] / ms["raw_no_bn"]
    # HubLayer at the floor in CPU time, and trailing TFSMLayer by no more
    # than the BatchNorm work TFSMLayer skips costs the floor.
    verdicts = [
        _verdict(cpu["raw"], 0.95),
        _verdict(vs["tfsm"], 0.95 / bn_cost),
    ]
    worst = min(verdicts, key=_VERDICTS.index)
    text = (
        f"Per epoch of `fit` (batch 32, tf.data's autotuner on, Keras's "
        f"default), HubLayer runs at {_common.fmt_ratio(vs['raw'])} the "
        f"raw floor's speed in wall time and "
        f"{_common.fmt_ratio(cpu['raw'])} in CPU time; with the autotuner "
        f"off, {_common.fmt_ratio(steady['vs']['raw'])}. HubLayer runs at "
        f"{_common.fmt_ratio(vs['tfsm'])} TFSMLayer's speed, and TFSMLayer "
        "does less: it calls the model with `training=False`, so no batch "
        "statistics and no BatchNorm updates, work that makes the floor "
        f"itself {bn_cost:.2f}x slower ({ms['raw']:.0f} against "
        f"{ms['raw_no_bn']:.0f} ms)."
        + _autotune_clause(autotune)
        + " "
        + _retrace_text(row)
        + f" ({row['repeats']} interleaved calls each.) Explained means: "
        "HubLayer's CPU-time ratio to the floor at ≥ 0.95x, and its ratio "
        f"to TFSMLayer at ≥ 0.95 / {bn_cost:.2f} = {0.95 / bn_cost:.2f}x "
        "(no more behind than the skipped work costs), by the spread rule "
        "above."
    )
    status = {
        "**met**": "**explained**",
        "*met by the median*": "*explained by the median*",
        "not met": "not explained",
    }[worst]
    return target, status, text


def _autotune_clause(data):
    if not data:
        return ""
    on, off = data["on"], data["off"]
    return (
        f" `bench_autotune.py` counted {on['slow_epochs']} slow epochs of "
        f"{on['epochs']} with the autotuner on and {off['slow_epochs']} of "
        f"{off['epochs']} off"
        + (
            ": the autotuner does not explain the gap in that run."
            if on["slow_epochs"] <= off["slow_epochs"]
            else ": with it on, some epochs waited (see *tf.data's autotuner*)."
        )
    )


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
    size = (
        data["trials"] >= 20
        and data["epochs"] >= 5
        and data["examples"] >= 1000
    )
    status = _verdict(speed, 10) if size and same else "not met"
    return (
        target,
        status,
        f"{data['trials']} trials x {data['epochs']} epochs on "
        f"{data['examples']} images: {_common.fmt_ratio(speed)} faster per "
        f"trial; the {data['uncached_trials']} trials run both ways score "
        f"the same within {data['max_score_difference']:.1e}; fixed cost "
        f"{data['fixed_ms']['median']:.0f} ms per trial (see *Search*)",
    )


def _startup_target(data):
    target = "`import keras_hubkit` ≤ 1.1x `import keras`"
    if not data:
        return (target, "not measured", "`bench_startup.py` has not run")
    r = data["time_ratio"]["import keras, keras_hubkit"]
    return (
        target,
        _verdict(r, 1.1, at_least=False),
        f"`import keras, keras_hubkit` takes {_common.fmt_ratio(r)} the time "
        f"of `import keras` ({data['repeats']} fresh interpreters each)",
    )


# At most 1.05x a bare load's time is at least this fraction of its speed.
WARM_LOAD_SPEED = 1 / 1.05


def _warm_load_target(data):
    target = "Warm `hk.load` ≤ 1.05x a bare `tf.saved_model.load`"
    if not data:
        return target, "not measured", "`bench_load.py` has not run"
    r = data["warm_speed_ratio"]
    return (
        target,
        _verdict(r, WARM_LOAD_SPEED),
        f"the first load in a process (full scan): speed "
        f"{_common.fmt_ratio(r)} (median {r['ratio']:.3f}x) of the bare "
        f"load, i.e. at most 1.05x its time means a speed of at least "
        f"{WARM_LOAD_SPEED:.3f}x "
        f"({data.get('repeats', '?')} interleaved loads each)"
        + (
            f"; again in the process (scan report reused), "
            f"{_common.fmt_ratio(data['again_speed_ratio'])}"
            if data.get("again_speed_ratio")
            else ""
        )
        + " (see *Loading*)",
    )


def _gpu_target(data):
    target = (
        "GPU rows: predict, train, `fit`, with and without `mixed_float16` "
        "and `jit_compile`"
    )
    precision = data.get("precision_gpu")
    if not (precision and precision.get("gpu")):
        return target, "not measured", GPU_NOTE
    gpus = ", ".join(precision["environment"]["gpu"])
    found = []
    for kind in ("predict", "train", "fit"):
        ratios = [
            r["vs_raw"]["hubkit"]["ratio"]
            for r in precision["rows"]
            if r["model"].startswith("image") and r["kind"] == kind
        ]
        if ratios:
            found.append(f"{kind} {min(ratios):.2f}x to {max(ratios):.2f}x")
    summary = (
        " MobileNet V3, HubLayer's speed against the raw floor, the lowest "
        "and highest median over the policy and `jit_compile` settings: "
        f"{'; '.join(found)} (`fit` also pays `fit`'s own cost per call "
        "and a copy of each batch to the GPU, which the raw floor does not; "
        "TFSMLayer pays them alike)."
        if found
        else ""
    )
    return (
        target,
        "measured (no ratio target)",
        f"on {gpus}: see *Precision and XLA on the GPU*.{summary}",
    )


def _per_call_target(layer):
    target = (
        "First round: HubLayer at ≥ 0.98x the raw call per predict, train "
        "step and `fit`"
    )
    cases = (layer or {}).get("cases")
    if not cases:
        return target, "not measured", "`bench_layer.py` has not run"
    met = [r for r in cases if _verdict(r["vs"]["raw"], 0.98) != "not met"]
    worst = min(cases, key=lambda r: r["vs"]["raw"]["ratio"])
    return (
        target,
        "**met**" if len(met) == len(cases) else "not met",
        f"met by {len(met)} of {len(cases)} cases (median); worst: "
        f"{worst['model']}, batch {worst['batch']}, {worst['kind']}: "
        f"{_common.fmt_ratio(worst['vs']['raw'])} (see *HubLayer against "
        "its peers*)",
    )


def _cold_download_target(data):
    target = (
        "First round: a cold download from a loopback server at ≥ 0.8x the "
        "raw transfer rate of the same bytes"
    )
    if not data or "ratio" not in data.get("cold", {}):
        return target, "not measured", "`bench_load.py` has not run"
    cold, link = data["cold"], data.get("cold_link")
    figure = (
        f"{_common.fmt_ratio(cold['ratio'])} on loopback, where the raw "
        f"read takes {cold['raw_ms']:.0f} ms and `hk.resolve` "
        f"{cold['resolve_ms']:.0f} ms (checking, unpacking and writing "
        "the files)"
    )
    if link:
        figure += (
            f"; served at {link['bytes_per_s'] / 1e6:.0f} MB/s, "
            f"{_common.fmt_ratio(link['ratio'])}"
        )
    return target, _verdict(cold["ratio"], 0.8), figure + " (see *Loading*)"


def _memory_target(data):
    target = "First round: peak RSS of a HubLayer training run ≤ 1.1x raw"
    if not data:
        return target, "not measured", "`bench_memory.py` has not run"
    runs = len(data["peak_mb"]["raw"])
    return (
        target,
        "**met**" if data["ratio"] <= 1.1 else "not met",
        f"{data['ratio']:.2f}x (the lowest peak of "
        f"{_common.plural(runs, 'run')} each; no spread; see *Memory*)",
    )


def _help_target(data):
    target = "`hubkit --help` in under 1 s"
    if not data or "hubkit --help" not in data.get("seconds", {}):
        return target, "not measured", "`bench_startup.py` has not run"
    s = data["seconds"]["hubkit --help"]
    return (
        target,
        _verdict(
            {"ratio": s["median"], "low": s["p25"], "high": s["p75"]},
            1.0,
            at_least=False,
        ),
        f"{s['median'] * 1e3:.0f} ms ({s['p25'] * 1e3:.0f}-"
        f"{s['p75'] * 1e3:.0f}; {s['n']} fresh interpreters)",
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
        _run(layer["environment"], peers=True),
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
                    f"| {model} | {path} | cannot run: {c['error']} | | |"
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
        "cases. The raw floor does the same work as HubLayer (training "
        "mode with BatchNorm updates, the regularization losses), so the "
        "gap to it is Keras's own per-call machinery (`train_on_batch` and "
        "`fit` build logs, metrics and callbacks; TFSMLayer pays it too), "
        "largest where a call does little work (the tiny model). The gap "
        "between HubLayer and the peers is also the work they skip: "
        "TFSMLayer runs the model with `training=False` and drops its "
        "regularization losses. Worst case: "
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
        _run(data["environment"]),
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


def _loops_section(layer, parts=None):
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
        "variable group, rates spread geometrically as `fine_tune`'s. A run "
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
        _run(layer.get("loops_environment") or layer["environment"]),
        "",
        "| model | loop | examples | batch | epochs | steps per call | n "
        "| run ms (raw) | vs raw, run | vs raw, run (CPU) "
        "| vs raw, steady epoch |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in loops:
        raw = row.get("raw", f"raw {row['loop']}")
        epoch = row.get("vs_raw_epoch")
        lines.append(
            f"| {row['model']} | {row['loop']} | {row['examples']} | "
            f"{row['batch']} | {row['epochs']} | "
            f"{row.get('steps_per_call') or '—'} | {row['repeats']} | "
            f"{row['run_ms'][row['loop']]:.0f} ({row['run_ms'][raw]:.0f}) | "
            f"{_common.fmt_ratio(row['vs_raw_run'])} | "
            f"{_common.fmt_ratio(row['vs_raw_run_cpu'])} | "
            f"{_common.fmt_ratio(epoch) if epoch else '—'} |"
        )
    return [
        *lines,
        "",
        _LOOPS_DONE,
        "",
        _loops_left(parts),
        *_what_if_lines(loops),
        "",
    ]


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
                f"{_common.fmt_ratio(base['vs_raw_run'])} (spreads "
                + (
                    "overlap)"
                    if _overlap(row["vs_raw_run"], base["vs_raw_run"])
                    else "apart)"
                )
            )
    if not said:
        return []
    return [
        "",
        "The *what-if* rows show how much of that a train step of our own "
        "would win back, per run: " + "; ".join(said) + ". Where the two "
        "spreads overlap, the difference is within this machine's noise: "
        "a train step of our own would not reliably close the gap. There "
        "is no what-if row for `fine_tune`. The trace and first run of "
        "Keras's `train_step` against the hand-written step are measured "
        "in *Parts of the training loop*.",
    ]


# What the runner does for speed, and what is left (each part measured by
# `bench_loop_parts.py`; no figure here).
_LOOPS_DONE = (
    "What the package's loops do for speed (*Parts of the training loop* "
    "below measures the lean functions, the pipeline and several steps "
    "per call against their alternatives): each stage traces its train "
    "step once (the optimizer's and metrics' variables are created before "
    "`fit` traces it; created inside, they make TensorFlow trace the whole "
    "step twice); with one step per call, `fit` and `evaluate` get lean "
    "step functions (one `tf.function` that reads the batch and calls the "
    "model's `train_step`, where Keras's own nest two, run them through "
    "the distribution strategy and unwrap an `Optional` after every "
    "call); training and validation arrays are fed through a prefetched "
    "`tf.data` pipeline with tf.data's autotuner off (see *tf.data's "
    "autotuner*), shuffled in a buffer when small; and a stage runs "
    "several steps per call only when its steps save more than Keras's "
    "step loops are predicted to cost to compile. *steps per call*: the "
    "most steps the package's loop ran per compiled call "
    "(`steps_per_execution`, chosen by the runner); the hand-written loop "
    "runs one."
)


def _loops_left(parts):
    """What is left against the hand-written loop, with the figures of
    `bench_loop_parts.py` where it ran."""
    steps = (parts or {}).get("steps") or []
    graph = "".join(
        f": {row['model']}, {row['keras train_step']['ops']} operations "
        f"against {row['hand-written step']['ops']}"
        for row in steps[:1]
    )
    steady = [
        f"{row['model']}: {_common.fmt_ratio(row['steady_epoch']['ratio'])}"
        for row in steps
        if row.get("steady_epoch")
    ]
    gaps = [
        f"{row['model']}: {row['per_stage_ms']['median']:+.0f} ms per "
        f"stage, {row['per_epoch_ms']['median']:+.2f} ms per epoch of "
        f"{row['loop_epoch_ms']:.0f} ms"
        for row in (parts or {}).get("gaps") or []
    ]
    return (
        "What is left is Keras's own. Per stage, paid by every `model.fit`: "
        "`compile`, and a `train_step` that takes longer to trace and to "
        "run for the first time than a bare `tf.function` step (its loss "
        "container, loss tracker and metric results add operations to the "
        f"step's graph{graph}); `fine_tune` pays it twice (two stages). Per "
        "epoch: what `fit` and the runner do around the steps (a new "
        "iterator, resetting and reading the metrics, the NaN guard's copy "
        "of the weights)."
        + (
            " Against the hand-written loop, both terms: "
            + "; ".join(gaps)
            + " (*Parts of the training loop*)."
            if gaps
            else ""
        )
        + (
            " The compiled step itself, over an epoch, runs at "
            + "; ".join(steady)
            + " the hand-written step's speed (*Parts of the training "
            "loop*)."
            if steady
            else ""
        )
    )


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
        "predicted cost. The two terms come from medians at two lengths, "
        "with no spread of their own; the per-step term in particular "
        "moves from run to run on this machine.",
        "",
        _run(data["environment"]),
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
        if saved > 0:
            saves = f"save {saved:.2f} ms per step"
            pays = (
                f"pays from about {loop['fixed_ms'] / saved:.0f} steps"
                if loop["fixed_ms"] > 0
                else "pays at once"
            )
        else:
            saves = f"save nothing per step here ({-saved:+.2f} ms)"
            pays = "never pays in this run"
        lines.append(
            f"- {row['model']}: {data['spe']} steps per call cost "
            f"{loop['fixed_ms']:.0f} ms to compile (the runner predicts "
            f"{row['predicted_wrap_ms']:.0f} ms for the "
            f"{row['carried_variables']} variables its train step carries "
            f"and its test step) and {saves} (the runner assumes "
            f"{row['assumed_saved_ms_per_step']}): {pays}."
        )
    return [
        *lines,
        "",
        *_step_graph_lines(data.get("steps") or []),
        *_gap_lines(data.get("gaps") or [], data.get("steps") or []),
    ]


def _step_graph_lines(rows):
    """What is left against a hand-written loop: the step itself."""
    if not rows:
        return []
    lines = [
        "What is left against a hand-written loop is the step `fit` "
        "traces: Keras's `train_step` (its loss container, loss tracker "
        "and metric results) against the hand-written loop's step of "
        "*Training loops* (the same model, loss and Adam), each made afresh "
        "as every stage makes it, taking turns; medians. Then both traced "
        "steps over steady epochs of the same pipeline, each as its loop "
        "runs it (Keras's function reads the iterator inside the step, the "
        "hand-written loop iterates in Python), taking turns. *n* counts "
        "the traces; the steady epochs' own *n* is given under the table.",
        "",
        "| model | n | step | operations | trace ms | first run ms "
        "| steady epoch ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        steady = row.get("steady_epoch") or {"ms": {}}
        for key, label in (
            ("keras train_step", "Keras's `train_step`"),
            ("hand-written step", "hand-written step"),
        ):
            d = row[key]
            lines.append(
                f"| {row['model']} | {row['repeats']} | {label} | {d['ops']} | "
                f"{d['trace_ms']:.0f} | {d['first_run_ms']:.0f} | "
                f"{_cell(steady['ms'].get(key))} |"
            )
    lines.append("")
    for row in rows:
        steady = row.get("steady_epoch")
        if steady:
            lines.append(
                f"- {row['model']}: over epochs of {steady['steps']} steps, "
                f"Keras's step runs at {_common.fmt_ratio(steady['ratio'])} "
                f"the hand-written step's speed (n={steady['repeats']})."
            )
    return [*lines, ""]


def _gap_lines(rows, steps=()):
    """The package's loop against the hand-written one, per stage and per
    epoch, and the parts timed inside its runs; `steps`: the step-graph
    rows above, for the trace and first run of each step."""
    if not rows:
        return []
    first = rows[0]
    short, long = first["epochs"]
    lines = [
        "And the whole of it: `StagedFineTuner` (one stage, everything "
        "trained, BatchNorm training, one step per call) against the "
        "hand-written loop of *Training loops* doing the same, in stages of "
        f"{short} and {long} epochs of {first['steps_per_epoch']} steps, "
        "taking turns, *n* rounds. The package costs `per_stage + "
        "per_epoch * epochs` more: in each round, its two runs less the "
        "loop's runs beside them give both terms for that round; the table "
        "gives their median and, in brackets, their interquartile range "
        "over the rounds. The parts are timed inside the same runs (the "
        "median call: each runs once per stage or once per epoch).",
        "",
        "| model | n | loop's epoch ms | package's extra per stage ms | "
        "package's extra per epoch ms | package's preparing of a stage ms "
        "| the loop's own ms | at every epoch's end ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        parts = row["parts"]
        epoch_end = sum(ms for per, ms in parts.values() if per == "epoch")
        lines.append(
            f"| {row['model']} | {row['repeats']} | "
            f"{row['loop_epoch_ms']:.1f} | {_term(row['per_stage_ms'], 0)} | "
            f"{_term(row['per_epoch_ms'], 2)} | {parts['prepare'][1]:.1f} | "
            f"{parts['loop_prepare'][1]:.1f} | {epoch_end:.2f} |"
        )
    lines.append("")
    graphs = {row["model"]: row for row in steps}
    for row in rows:
        lines.append(_gap_bullet(row, graphs.get(row["model"])))
    return [*lines, "", *_long_stage_lines(rows)]


def _long_stage_lines(rows):
    long = rows[0]["long_stage"]
    lines = [
        f"*A longer stage*: {long['epochs']} epochs of "
        f"{long['steps_per_epoch']} steps, the package with its defaults, "
        "against the loop over the same data, *n* runs each, taking turns; "
        "the package's speed relative to the loop's (> 1: faster). "
        "`StagedFineTuner` as above, and `fine_tune` (a head epoch, then "
        f"{long['epochs'] - 1} of everything) against the loop doing the "
        "same (its plan of *Training loops*). Over this many steps the "
        "runner runs several per call, where the loop runs one: that, not "
        "a leaner step, is where the package's lead comes from (see the "
        "first table: 32 steps per call save tenths of a millisecond per "
        "step).",
        "",
    ]
    for row in rows:
        stage = row["long_stage"]
        lines.append(
            f"- {row['model']}: `StagedFineTuner` "
            f"{_common.fmt_ratio(stage['ratio'])} (the loop's stage "
            f"{stage['loop_ms'] / 1e3:.1f} s; the package ran "
            f"{stage['steps_per_call']} steps per call), `fine_tune` "
            f"{_common.fmt_ratio(stage['fine_tune_ratio'])} (the loop's "
            f"run {stage['fine_tune_loop_ms'] / 1e3:.1f} s; the package's "
            f"second stage ran {stage['fine_tune_steps_per_call']} steps "
            "per call)."
        )
    return [*lines, ""]


# The work timed at every epoch's end and start (`bench_loop_parts.PARTS`).
_EPOCH_PARTS = {
    "reset_metrics": "resetting the metrics",
    "metric_results": "the metrics' results",
    "nan_guard": "the NaN guard's copy of the weights",
    "best_weights": "tracking the best epoch",
    "history": "recording the history",
}


def _gap_bullet(row, graph=None):
    parts = row["parts"]
    prepare, own = parts["prepare"][1], parts["loop_prepare"][1]
    at_end = ", ".join(
        f"{_EPOCH_PARTS[key]} {ms:.2f}"
        for key, (per, ms) in parts.items()
        if per == "epoch"
    )
    stage, epoch = row["per_stage_ms"]["median"], row["per_epoch_ms"]["median"]
    rest = stage - (prepare - own)
    traced = ""
    if graph:
        keras, hand = graph["keras train_step"], graph["hand-written step"]
        longer = (keras["trace_ms"] + keras["first_run_ms"]) - (
            hand["trace_ms"] + hand["first_run_ms"]
        )
        traced = (
            f", of which the longer trace and first run of Keras's "
            f"`train_step` account for about {longer:.0f} ms (the table "
            "above) and the rest is `fit`'s own setup of a call and this "
            "machine's noise"
        )
    return (
        f"- {row['model']}: per stage, {stage:+.0f} ms beyond the loop "
        f"(median). Preparing the stage takes {prepare:.1f} ms against the "
        f"loop's {own:.1f} ms (its optimizers built, its step defined), "
        f"`compile` {parts['compile'][1]:.1f} ms of it; the other "
        f"{rest:.0f} ms are `fit`'s{traced}. Per epoch, {epoch:+.2f} ms: "
        f"the work timed at every epoch's end and start (ms: {at_end}) "
        "less what the steps gain (Keras's step reads its batch inside the "
        "graph; see the steady epochs above)."
    )


def _autotune_section(data):
    on, off = data["on"], data["off"]
    processes = _common.plural(
        data["processes"], "fresh process", "fresh processes"
    )
    return [
        "## tf.data's autotuner",
        "",
        "`python benchmarks/bench_autotune.py`: a MobileNet V3 fine-tuning "
        "step that reads its batch from the iterator it is given (as "
        "Keras's `fit` does), one epoch of 4 batches at a time, with the "
        "autotuner on and off, in "
        f"{processes} "
        f"each, taking turns, {data['epochs_per_process']} epochs per "
        "process. A slow epoch takes over 1.5x the median epoch with the "
        "autotuner off.",
        "",
        _run(data["environment"]),
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
        _autotune_finding(on, off),
        "",
    ]


def _autotune_finding(on, off):
    if on["slow_epochs"] <= off["slow_epochs"]:
        return (
            "This run shows no cost of the autotuner: no more slow epochs "
            "with it on than off. The pipelines the package builds turn it "
            "off; *HubLayer against its peers* times `fit` both ways."
        )
    return (
        f"With the autotuner on, {on['slow_epochs']} of {on['epochs']} "
        f"epochs were slow (off: {off['slow_epochs']}): epochs that waited "
        "for a thread rather than worked (compare the CPU time). The "
        "pipelines the package builds turn it off."
    )


def _precision_notes(data):
    """What the rows need beside them: how the machine got its TensorFlow,
    what was added after the run, what the `fit` rows compare on a GPU, and
    how far the raw floor moved between its repeated rows."""
    lines = []
    if data.get("setup"):
        lines += [f"Setup: {data['setup'].rstrip('.')}.", ""]
    if data.get("annotations"):
        added = "; ".join(a.rstrip(".") for a in data["annotations"])
        lines += [f"*Added after the run:* {added}.", ""]
    if data.get("gpu"):
        fit = _precision_row(data, "tiny", "float32", False, "fit")
        note = (
            "The `fit` rows time five steps of `fit` over a `tf.data` "
            "dataset in host memory, so each step also copies its batch to "
            "the GPU, against five raw steps on a batch already there; "
            "HubLayer and TFSMLayer pay this alike."
        )
        if fit:
            note += (
                f" `fit`'s own cost per call shows on the tiny model: "
                f"{fit['ms']['hubkit']:.1f} ms for HubLayer against "
                f"{fit['ms']['raw']:.1f} ms raw (float32, no XLA)."
            )
        lines += [note, ""]
    drift = _raw_drift(data.get("rows") or [])
    if drift:
        lines += [
            f"The raw floor does the same work under both policies, yet its "
            f"medians differ by up to {drift:.0%} between them: differences "
            "between the float32 and `mixed_float16` ratios smaller than "
            "that are noise.",
            "",
        ]
    return lines


def _raw_drift(rows):
    """The largest relative difference between the raw floor's medians of
    the same model, `jit_compile` and kind under the two policies."""
    by_case = {}
    for r in rows:
        key = (r["model"], r["jit_compile"], r["kind"])
        by_case.setdefault(key, []).append(r["ms"]["raw"])
    spreads = [max(v) / min(v) - 1 for v in by_case.values() if len(v) > 1]
    return max(spreads, default=None)


def _precision_row(data, model, policy, jit, kind):
    """The row of the model whose name starts with `model`, for one
    setting and kind; None if the run has none."""
    for row in data.get("rows") or []:
        if row["model"].startswith(model) and (
            row["policy"],
            row["jit_compile"],
            row["kind"],
        ) == (policy, jit, kind):
            return row
    return None


def _precision_section(data):
    rows = data.get("rows") or []
    if not rows:
        return []
    device = (
        ""
        if data.get("gpu")
        else " Device: CPU only (no GPU): the tiny model alone."
    )
    title = "Precision and XLA" + (" on the GPU" if data.get("gpu") else "")
    lines = [
        f"## {title}",
        "",
        "`python benchmarks/bench_precision.py`: the paths of *HubLayer "
        "against its peers*, under the float32 and `mixed_float16` global "
        "dtype policies, with and without `jit_compile`; milliseconds per "
        "call (median of *n* interleaved calls) and HubLayer's speed "
        "relative to the raw floor with the same `jit_compile`. The "
        "SavedModel computes in float32 in every path (a TF Hub model is "
        "traced in float32; HubLayer casts its inputs to that dtype), so "
        "under `mixed_float16` only the Keras side changes (the casts, and "
        "the loss scaling `compile` adds): these rows show what the policy "
        "costs around a float32 SavedModel, not a float16 speed-up. The "
        "raw floor has no policy: its rows differ only by `jit_compile`."
        f"{device}",
        "",
        _run(data["environment"]),
        "",
        *_precision_notes(data),
        "| model | batch | policy | jit_compile | kind | n | raw | HubLayer "
        "| TFSMLayer | vs raw |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ms = row["ms"]
        tfsm = (
            _cell(ms.get("tfsm"))
            if "tfsm" in ms
            else "cannot run"
            if row.get("cannot_run", {}).get("tfsm")
            else "—"
        )
        lines.append(
            f"| {row['model']} | {row['batch']} | {row['policy']} | "
            f"{row['jit_compile']} | {row['kind']} | {row['repeats']} | "
            f"{ms['raw']:.2f} | {ms['hubkit']:.2f} | {tfsm} | "
            f"{_common.fmt_ratio(row['vs_raw']['hubkit'])} |"
        )
    reasons = {}  # model -> why TFSMLayer cannot run it, in table order
    for r in rows:
        why = r.get("cannot_run", {}).get("tfsm")
        if why and why not in reasons.get(r["model"], []):
            reasons.setdefault(r["model"], []).append(why)
    if reasons:
        said = "; ".join(
            f"for the {model.split(':')[0]} model, {', '.join(whys)}"
            for model, whys in reasons.items()
        )
        lines += ["", f"Where TFSMLayer cannot run, why: {said}."]
    return [*lines, ""]


def _load_section(data):
    cold, link = data["cold"], data.get("cold_link")
    r = data["warm_speed_ratio"]
    lines = [
        "## Loading",
        "",
        "`python benchmarks/bench_load.py` (MobileNet V3).",
        "",
        _run(data["environment"]),
        "",
        f"- Warm `hk.load` (resolve + scan + load) of a cached model, the "
        f"first in a process (the full scan, and a private copy of the "
        f"scanned graph for TensorFlow to load), runs at "
        f"{_common.fmt_ratio(r)} the speed of a bare `tf.saved_model.load` "
        f"(target ≥ {WARM_LOAD_SPEED:.3f}x, i.e. ≤ 1.05x the time; "
        f"{data.get('repeats', '?')} interleaved loads each, a garbage "
        f"collection before each); the scan alone takes "
        f"{data['scan_ms']:.0f} ms.",
    ]
    again = data.get("again_speed_ratio")
    if again:
        lines.append(
            "- A later `hk.load` of the same model in the same process "
            "reuses the scan's report and the copy while the file's content "
            "hash is "
            f"unchanged: {_common.fmt_ratio(again)} the speed of the bare "
            "load."
        )
    if "ratio" not in cold:
        return [*lines, ""]
    lines.append(
        f"- Cold download of the {cold['archive_mb']:.1f} MB archive into "
        "an empty cache (download, checks, unpacking, writing the files) "
        "against reading the same bytes raw from the same server, in "
        f"turns, {cold['repeats']} times each: from a loopback server as "
        f"fast as it goes, {cold['resolve_ms']:.0f} ms against "
        f"{cold['raw_ms']:.0f} ms, {_common.fmt_ratio(cold['ratio'])} the "
        f"raw rate (target 0.8x: {_verdict(cold['ratio'], 0.8)}; on "
        "loopback the raw read is "
        "nearly free, so the ratio is what checking, unpacking and writing "
        f"cost, about {cold['resolve_ms'] - cold['raw_ms']:.0f} ms)"
        + (
            f"; served at {link['bytes_per_s'] / 1e6:.0f} MB/s, "
            f"{link['resolve_ms']:.0f} ms against {link['raw_ms']:.0f} ms, "
            f"{_common.fmt_ratio(link['ratio'])} ({link['repeats']} times "
            "each)."
            if link
            else "."
        )
    )
    return [*lines, ""]


def _search_section(data):
    if "fixed_ms" not in data:
        return []
    s = data["seconds_per_trial"]
    partial = data["uncached_trials"] < data["trials"]
    return [
        "## Search",
        "",
        "`python benchmarks/bench_search.py`: a head-only keras-tuner "
        "GridSearch on MobileNet V3 (head width and depth, label "
        "smoothing) over synthetic images (noise, the class in the colour "
        "balance), the size of a real search: "
        f"{data['trials']} trials of {data['epochs']} epochs, batch "
        f"{data['batch_size']}, {data['examples']} training and "
        f"{data['validation_examples']} validation images; the objective is "
        "the validation loss, which includes the trial's label smoothing "
        "(so trials without smoothing score lower by construction).",
        "",
        _run(data["environment"]),
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
        "counting the feature pass; target 10x)"
        + (
            f", comparing the uncached time of the first "
            f"{data['uncached_trials']} trials with the cached time of the "
            f"{s['cached']['n']} trials after the first"
            if partial
            else ""
        )
        + f". The {data['uncached_trials']} trials run both ways score the "
        f"same (largest difference {data['max_score_difference']:.1e}; "
        f"their best validation loss {data['best_score']['uncached']:.2e} "
        f"uncached, {data['best_score']['cached']:.2e} cached)"
        + (
            f"; the best of all {data['trials']} cached trials scored "
            f"{_best_cached(data):.2e}"
            if partial
            else ""
        )
        + ". The model `get_best_models` returns re-evaluates to "
        f"{data['best_model_evaluation']:.2e} on the validation images. "
        "The searches run one after another (cached, the hand-written "
        "trials, uncached), not in turns, and each spread below is over "
        "different trials (new and seen head shapes), not repeats of one.",
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
        f"{data['rebuild_seconds']:.2f} s.",
        "",
    ]


def _best_cached(data):
    scores = (data.get("scores") or {}).get("cached") or []
    return min(scores) if scores else float("nan")


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
        "`test_step`; *Parts of the training loop* compares their trace "
        "with a hand-written step's), where a seen shape reuses them."
    )


_SHAPES = {
    "new_shape": "trials with a new head shape",
    "seen_shape": "with a head shape seen before",
}


def _quality_section(data):
    import bench_quality

    lines = bench_quality.render_section(data)
    # After the section's first paragraph.
    return [*lines[:3], "", _run(data["environment"]), *lines[3:]]


def _memory_section(data):
    runs = data["peak_mb"]
    return [
        "## Memory",
        "",
        "`python benchmarks/bench_memory.py`: peak RSS of 10 MobileNet V3 "
        "training steps, each path in its own process, in turns: HubLayer "
        f"in Keras {min(runs['hubkit']):.0f} MB, the raw SavedModel and "
        f"`tf.function` loop {min(runs['raw']):.0f} MB "
        f"({data['ratio']:.2f}x; target ≤ 1.1x). Each figure is the lowest "
        f"of {_common.plural(len(runs['raw']), 'run')} (all runs: HubLayer "
        f"{_mb_list(runs['hubkit'])}, raw {_mb_list(runs['raw'])} MB): no "
        "spread is given for so few runs.",
        "",
        _run(data["environment"]),
        "",
    ]


def _mb_list(values):
    return ", ".join(f"{v:.0f}" for v in values)


def _cell(value):
    return f"{value:.2f}" if value is not None else "—"


if __name__ == "__main__":
    main()
