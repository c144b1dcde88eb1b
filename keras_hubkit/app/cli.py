"""The `hubkit` command line.

Fast, quiet, and no tracebacks for user mistakes:

- `hubkit --help` and `hubkit cache ...` never import TensorFlow; other
  commands import it only once their arguments are checked.
- TensorFlow's start-up log lines are hidden unless `--verbose`.
- A mistake (a missing file, an output folder that holds files, a wrong
  model kind, a missing extra) ends in one line on stderr and exit status 2;
  an unexpected failure in one line and status 1 (`--verbose` shows the
  traceback).
"""

import argparse
import contextlib
import importlib
import importlib.util
import logging
import os
import re
import sys
import tempfile
import warnings

EXIT_ERROR = 2  # a user mistake or a refused input
EXIT_BUG = 1  # anything unexpected
EXIT_INTERRUPTED = 130

DEMO_EXTRA = 'pip install "keras_hubkit[demo]"'
# Import name -> what it is for; all come with the `demo` extra.
EXTRAS = {
    "sklearn": "the demo's data",
    "matplotlib": "training curves and confusion matrices",
    "PIL": "reading images",
}

# C++ start-up lines TensorFlow writes to stderr while it starts: absl
# INFO/WARNING records (`I0000 00:00:...] ...`) and their continuation, and
# the CUDA probe's error on a machine without a GPU driver.
_STARTUP_NOISE = re.compile(
    r"^([IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] |E\d{4} .*failed call to cuInit|"
    r"WARNING: All log messages before absl::InitializeLog\(\)|"
    r"To enable the following instructions:)"
)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class UsageError(Exception):
    """A command-line mistake the parser cannot see (say, a missing file)."""


# ------------------------------------------------------------- commands
def _demo(args):
    _require_extras("sklearn", "matplotlib", command="demo")
    _import_tensorflow(args)
    from keras_hubkit.app import demo

    demo.run(args.output_dir, quick=args.quick)
    return 0


def _cache(args):
    from keras_hubkit.model_cache import ModelCache

    cache = ModelCache(args.cache_dir)
    if args.action == "list":
        entries = cache.entries()
        print(f"Cache: {cache.cache_dir} ({len(entries)} models)")
        for e in entries:
            state = "" if e.valid else "  [incomplete]"
            print(f"{e.size_bytes / 1e6:10.1f} MB  {e.handle}{state}")
            print(f"{'':13} {e.path}")
    elif args.action == "remove":
        if not args.handle:
            raise UsageError(
                "Expected the HANDLE to remove. Received: no handle. Run "
                "`hubkit cache list` to see them, then `hubkit cache remove "
                "HANDLE`."
            )
        from keras_hubkit._redact import redact

        found = cache.remove(args.handle)
        print(("Removed " if found else "Not cached: ") + redact(args.handle))
    else:
        print(f"Removed {cache.clear()} models from {cache.cache_dir}")
    return 0


def _inspect(args):
    _require_local_or_url(args.handle, "HANDLE")
    _import_tensorflow(args)
    from keras_hubkit.app._describe import describe
    from keras_hubkit.app._describe import describe_keras_file

    allow_ops = args.allow_op or None
    if _is_keras_file(args.handle):
        text, loaded = describe_keras_file(args.handle, allow_ops=allow_ops)
    else:
        text, loaded = describe(args.handle, allow_ops=allow_ops)
    print(text)
    return 0 if loaded else EXIT_ERROR


def _is_keras_file(path):
    """A `.keras` archive, or a Keras model folder saved unzipped."""
    return path.endswith(".keras") or os.path.isfile(
        os.path.join(path, "config.json")
    )


def _predict(args):
    _require_local_or_url(args.model, "MODEL")
    _import_tensorflow(args)
    from keras_hubkit.app import predict

    return predict.run(args)


def _predict_arguments(parser):
    from keras_hubkit.app import predict  # no TensorFlow at import

    predict.add_arguments(parser)
    _allow_op_option(parser)


def _print_result(result):
    print()
    print(
        f"Test accuracy: {result['test_accuracy']:.3f} on "
        f"{result['test_examples']} held-out examples "
        f"({result['epochs']} epochs, {result['train_seconds']:.1f} s)"
    )
    for name, path in result["paths"].items():
        print(f"  {name:17} {path}")


def _run(args):
    from keras_hubkit.app.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.set or ())
    data = recipe.get("data", {})
    _require_data_path(data.get("path"), "data.path")
    extras = ["matplotlib"]
    if data.get("kind") == "image_folder":
        extras.append("PIL")
    _require_extras(*extras, command="run")
    _import_tensorflow(args)
    from keras_hubkit.app.recipe import run_recipe

    _print_result(run_recipe(recipe, args.output, overwrite=args.overwrite))
    return 0


def _train(args):
    if bool(args.data) == bool(args.csv):
        raise UsageError(
            "Expected one data source. Received: "
            f"--data={args.data!r}, --csv={args.csv!r}. Give either --data "
            "DIR (class folders) or --csv FILE."
        )
    if args.csv:
        _require_data_path(args.csv, "--csv")
        data = {
            "kind": "text_csv",
            "path": args.csv,
            "text_column": args.text_column,
            "label_column": args.label_column,
        }
    else:
        _require_data_path(args.data, "--data")
        data = {
            "kind": "text_folder" if args.text else "image_folder",
            "path": args.data,
        }
        if args.image_size:
            data["image_size"] = args.image_size
        data["augment"] = args.augment
    _require_local_or_url(args.handle, "--handle")
    _require_extras(
        "matplotlib",
        *(["PIL"] if data["kind"] == "image_folder" else []),
        command="train",
    )
    data.update(
        test_split=args.test_split, validation_split=args.validation_split
    )
    # With `--lr find`, the fine-tuning stage keeps its 1/10 ratio to the
    # rate the range test finds (see app.train).
    base_lr = 0.005 if args.lr == "find" else args.lr
    stages = [
        {
            "epochs": args.epochs,
            "lr": args.lr,
            "optimizer": "sgd",
            "momentum": 0.9,
        }
    ]
    if args.fine_tune_epochs:
        stages.append(
            {
                "epochs": args.fine_tune_epochs,
                "unfreeze": "all",
                "lr": base_lr / 10,
                "optimizer": "sgd",
                "momentum": 0.9,
            }
        )
    recipe = {
        "data": data,
        "model": {"handle": args.handle},
        "stages": stages,
        "output": {"tflite": args.tflite},
    }
    _import_tensorflow(args)
    from keras_hubkit.app.recipe import run_recipe

    _print_result(run_recipe(recipe, args.output, overwrite=args.overwrite))
    return 0


def _export(args):
    from keras_hubkit import errors

    _require_local_or_url(args.source, "SOURCE")
    if _holds_files(args.dest) and not args.overwrite:
        raise errors.OutputExistsError(
            "Expected a new or empty destination folder. Received: "
            f"dest={args.dest}, which holds files. Pass --overwrite to "
            "replace it (atomically), or choose another folder."
        )
    _import_tensorflow(args)
    from keras_hubkit.export import export_saved_model
    from keras_hubkit.loading import load

    if _is_keras_file(args.source):
        import keras

        # Safe mode holds: HubLayer rebuilds itself in safe mode when its
        # stored SavedModel passes the scan with no opt-in.
        try:
            obj = keras.models.load_model(args.source)
        except ValueError as e:
            if "safe_mode" not in str(e) or isinstance(e, errors.HubkitError):
                raise
            raise errors.UnsafeDeserializationError(
                "Expected a .keras file that Keras loads in safe mode. "
                f"Received: source={args.source}, which holds Python code "
                f"({str(e).split('.')[0]}). The command line never turns "
                "safe mode off: if you trust the file, load it in Python "
                "with keras.models.load_model(path, safe_mode=False) and "
                "call hk.export_saved_model."
            ) from e
    else:
        obj = load(args.source, allow_ops=args.allow_op or None)
        _require_reusable(obj, args.source)
    path = export_saved_model(
        obj, args.dest, overwrite=args.overwrite, tflite=args.tflite
    )
    print(f"Exported a reusable SavedModel to {path}")
    return 0


def _require_reusable(obj, source):
    """Refuses a signature-only model.

    Re-exporting it would write a model without `__call__`, which `HubLayer`
    cannot fine-tune or reuse.
    """
    from keras_hubkit import errors
    from keras_hubkit._savedmodel import public_signatures

    if callable(obj):
        return
    signatures = sorted(public_signatures(obj))
    raise errors.ExportError(
        "Expected a reusable TF2 SavedModel (with __call__). Received: "
        f"source={source}, which has only signatures {signatures} (a TF1 "
        "Hub module or a serving-only export). Use it for inference with "
        "hk.HubLayer(source, signature=..., output_key=...) instead of "
        "re-exporting it."
    )


# ------------------------------------------------------------- checks
def _rate(text):
    """`--lr`: a positive number, or `find`."""
    if text == "find":
        return text
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive number or `find`, received {text!r}"
        )
    return value


def _holds_files(path):
    return os.path.isdir(path) and bool(os.listdir(path))


def _require_local_or_url(handle, flag):
    """A handle is a URL or an existing path; say which flag is wrong."""
    from keras_hubkit import errors

    if "://" in handle or os.path.exists(handle):
        return
    raise errors.HandleNotFoundError(
        f"Expected a path or URL for {flag}. Received: {flag}={handle}, "
        "which does not exist. Check the path (or give a URL)."
    )


def _require_data_path(path, flag):
    if path and not os.path.exists(path):
        from keras_hubkit import errors

        raise errors.DataError(
            f"Expected an existing file or folder for {flag}. Received: "
            f"{flag}={path}, which does not exist. Check the path."
        )


def _require_extras(*modules, command):
    """Fails fast, before any training, when the `demo` extra is missing."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        uses = ", ".join(f"{m} ({EXTRAS[m]})" for m in missing)
        raise UsageError(
            f"hubkit {command} needs the demo extra. Received: missing "
            f"{uses}. Install it: {DEMO_EXTRA}"
        )


def _check_importable(names):
    """Missing `--import` packages fail before TensorFlow loads."""
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise UsageError(
                f"Expected an importable package for --import. Received: "
                f"--import {name}, which is not installed. Install it (for "
                "TF Hub text models: pip install tensorflow-text)."
            )


def _import_modules(names):
    """`--import` packages, e.g. `tensorflow_text` for its custom ops."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise UsageError(
                f"Expected an importable package for --import. Received: "
                f"--import {name} ({e}). Install it (for TF Hub text "
                "models: pip install tensorflow-text)."
            ) from e


# ---------------------------------------------------- quiet TensorFlow
def _quiet_environment(verbose):
    """Before TensorFlow is imported: its logs, unless asked for."""
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for module in ("tensorflow", "keras", "keras_tuner", "absl"):
        warnings.filterwarnings("ignore", module=module)
    with contextlib.suppress(ImportError):
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)


def _import_tensorflow(args):
    """Starts TensorFlow, hiding its C++ start-up lines unless --verbose.

    Those lines are written to the process's stderr before any log level
    applies (TF_CPP_MIN_LOG_LEVEL does not hide them in TensorFlow 2.21), so
    stderr is captured while TensorFlow loads and probes its devices; every
    other line written then (an error, say) is passed on.
    """
    if "tensorflow" in sys.modules or getattr(args, "verbose", False):
        import tensorflow  # noqa: F401

        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            # Probing the devices is what prints the CUDA lines.
            tf.config.list_physical_devices()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf8", "replace")
    kept = [
        line for line in text.splitlines() if not _STARTUP_NOISE.match(line)
    ]
    if kept:
        print("\n".join(kept), file=sys.stderr)


# -------------------------------------------------------------- parser
def _global_options(parser, suppress):
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="show TensorFlow's logs and full tracebacks",
    )
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        metavar="MODULE",
        default=default,
        help="import MODULE first, e.g. tensorflow_text for the custom "
        "ops of TF Hub text models (repeatable)",
    )


def _demo_arguments(demo):
    demo.add_argument(
        "--output-dir", default="hubkit_demo", help="where results go"
    )
    demo.add_argument(
        "--quick", action="store_true", help="fewer epochs (for tests)"
    )


def _run_arguments(run):
    run.add_argument("recipe", help="the recipe file")
    run.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a value, e.g. --set model.dropout=0.3 or "
        "--set stages.0.epochs=1 (repeatable)",
    )
    run.add_argument("--output", help="output folder (default: the recipe's)")
    _overwrite_option(run)


def _export_arguments(export):
    export.add_argument("source", help="a handle, or a .keras file")
    export.add_argument("dest", help="the folder to write")
    _overwrite_option(export, "replace DEST (atomically) if it holds files")
    export.add_argument(
        "--tflite", action="store_true", help="also write DEST/model.tflite"
    )
    _allow_op_option(export)


def _inspect_arguments(inspect):
    inspect.add_argument("handle", help="a path or URL, or a .keras file")
    _allow_op_option(inspect)


def _cache_arguments(cache):
    cache.add_argument("action", choices=["list", "remove", "clear"])
    cache.add_argument("handle", nargs="?", help="the handle to remove")
    cache.add_argument("--cache-dir", help="another cache folder")


def _overwrite_option(
    parser, text="write into an output folder that already holds files"
):
    parser.add_argument("--overwrite", action="store_true", help=text)


def _allow_op_option(parser):
    parser.add_argument(
        "--allow-op",
        action="append",
        metavar="OP",
        help="accept this risky op (repeatable); see the scan report",
    )


def _train_arguments(train):
    from keras_hubkit import constants

    train.add_argument("--data", help="folder with one sub-folder per class")
    train.add_argument("--csv", help="CSV file with a text and a label column")
    train.add_argument(
        "--text", action="store_true", help="the class folders hold .txt files"
    )
    train.add_argument(
        "--text-column",
        default="text",
        help="with --csv: the column of texts (default text)",
    )
    train.add_argument(
        "--label-column",
        default="label",
        help="with --csv: the column of labels (default label)",
    )
    train.add_argument("--handle", required=True, help="path or URL")
    train.add_argument("--output", required=True, help="output folder")
    _overwrite_option(train)
    train.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="image height and width, for models that take any size "
        "(default: the size the model was traced for)",
    )
    train.add_argument(
        "--epochs", type=int, default=5, help="head-only epochs (default 5)"
    )
    train.add_argument(
        "--fine-tune-epochs",
        type=int,
        default=0,
        help="then epochs with the base unfrozen (default 0)",
    )
    train.add_argument(
        "--lr",
        type=_rate,
        default=0.005,
        help="the head stage's rate, or `find` (learning-rate range test; "
        "writes lr_find.png)",
    )
    train.add_argument(
        "--test-split",
        type=float,
        default=constants.TEST_SPLIT,
        help="fraction of the data held out to report accuracy on "
        f"(default {constants.TEST_SPLIT})",
    )
    train.add_argument(
        "--validation-split",
        type=float,
        default=constants.VALIDATION_SPLIT,
        help="fraction of the rest used for validation while training "
        f"(default {constants.VALIDATION_SPLIT})",
    )
    train.add_argument(
        "--tflite", action="store_true", help="also write model.tflite"
    )
    train.add_argument(
        "--augment", action="store_true", help="flip/rotate/zoom"
    )


# name: (run, add its arguments, one-line help, description). A new command
# is a module of this package with those two functions, and a row here.
COMMANDS = {
    "demo": (
        _demo,
        _demo_arguments,
        "run the offline demo (no download)",
        "Publish a small SavedModel, then reuse and fine-tune it with "
        "HubLayer, offline. Needs the demo extra: " + DEMO_EXTRA,
    ),
    "run": (
        _run,
        _run_arguments,
        "run a recipe file (train, evaluate, export)",
        "Run a recipe (TOML): data, handle, head, stage plan, optional "
        "search, export. See recipes/ for examples.",
    ),
    "train": (
        _train,
        _train_arguments,
        "train a classifier from a folder or CSV (common case)",
        "Train a classifier: a HubLayer plus a head, trained on class "
        "folders (images or .txt files) or a CSV, then evaluated on a "
        "held-out split and exported (SavedModel, labels.txt, metrics.json, "
        "pictures).",
    ),
    "export": (
        _export,
        _export_arguments,
        "re-export a model as a reusable SavedModel",
        "Re-export a SavedModel handle or a .keras file as a reusable "
        "SavedModel (atomic).",
    ),
    "inspect": (
        _inspect,
        _inspect_arguments,
        "show a model's scan report, signatures, variables and losses",
        "Scan a SavedModel's ops (before anything runs), then load it and "
        "list its __call__ traces, signatures (inputs and outputs), variable "
        "counts and regularization losses.",
    ),
    "predict": (
        _predict,
        _predict_arguments,
        "classify image (or .txt) files with a trained model",
        "Classify files with a SavedModel written by `hubkit train` or a "
        "recipe (its serving signature decodes, resizes and scales by "
        "itself). MODEL is the run's output folder or its saved_model "
        "folder.",
    ),
    "cache": (
        _cache,
        _cache_arguments,
        "list, remove or clear downloaded models",
        "The download cache (TFHUB_CACHE_DIR or a per-user folder).",
    ),
}


def build_parser():
    """The `hubkit` argument parser (commands and their options)."""
    parser = argparse.ArgumentParser(
        prog="hubkit",
        description="TF2 SavedModels and TF Hub models for Keras 3.",
    )
    _global_options(parser, suppress=False)
    # The global options are accepted after the command too.
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for name, (func, add_arguments, text, description) in COMMANDS.items():
        command = commands.add_parser(
            name, parents=[common], help=text, description=description
        )
        add_arguments(command)
        command.set_defaults(func=func)
    return parser


# ---------------------------------------------------------------- main
def main(argv=None):
    """Runs `hubkit` with `argv` (default: `sys.argv[1:]`).

    Returns:
        The exit status: 0 on success, 2 for a user mistake or a refused
        input, 1 for an unexpected failure, 130 when interrupted.
    """
    args = build_parser().parse_args(argv)
    verbose = getattr(args, "verbose", False)
    _quiet_environment(verbose)
    from keras_hubkit import errors

    try:
        imports = getattr(args, "imports", None) or ()
        if imports:
            _check_importable(imports)
            # Custom-op packages load TensorFlow: quietly, as commands do.
            _import_tensorflow(args)
            _import_modules(imports)
        return args.func(args)
    except (errors.HubkitError, UsageError) as e:
        return _fail(args, e, EXIT_ERROR)
    except ModuleNotFoundError as e:
        if e.name not in EXTRAS:
            return _unexpected(args, e, verbose)
        return _fail(
            args,
            UsageError(
                f"hubkit {args.command} needs {e.name} ({EXTRAS[e.name]}). "
                f"Install the demo extra: {DEMO_EXTRA}"
            ),
            EXIT_ERROR,
        )
    except KeyboardInterrupt:
        print(f"hubkit {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        return _unexpected(args, e, verbose)


def _fail(args, error, status):
    kind = "" if isinstance(error, UsageError) else f"{type(error).__name__}: "
    # One line, without the terminal colours Keras adds to layer errors.
    message = " ".join(_ANSI.sub("", str(error)).split())
    print(f"hubkit {args.command}: {kind}{message}", file=sys.stderr)
    return status


def _unexpected(args, error, verbose):
    if verbose:
        raise error
    first = (str(error).strip().splitlines() or [""])[0]
    print(
        f"hubkit {args.command}: unexpected {type(error).__name__}: "
        f"{first} (run again with --verbose for the details)",
        file=sys.stderr,
    )
    return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
