"""The `hubkit` command line."""

import argparse
import os
import sys


def _demo(args):
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
            raise SystemExit("hubkit cache remove: give the HANDLE to remove")
        found = cache.remove(args.handle)
        print(("Removed " if found else "Not cached: ") + args.handle)
    else:
        print(f"Removed {cache.clear()} models from {cache.cache_dir}")
    return 0


def _inspect(args):
    from keras_hubkit.app._describe import describe

    text, loaded = describe(args.handle, allow_ops=args.allow_op or None)
    print(text)
    return 0 if loaded else 2


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
    from keras_hubkit.app.recipe import run_recipe

    recipe = load_recipe(args.recipe, args.set or ())
    _print_result(run_recipe(recipe, args.output))
    return 0


def _train(args):
    from keras_hubkit.app.recipe import run_recipe

    if bool(args.data) == bool(args.csv):
        raise SystemExit("hubkit train: give either --data DIR or --csv FILE")
    if args.csv:
        data = {
            "kind": "text_csv",
            "path": args.csv,
            "text_column": args.text_column,
            "label_column": args.label_column,
        }
    else:
        data = {
            "kind": "text_folder" if args.text else "image_folder",
            "path": args.data,
        }
        if args.image_size:
            data["image_size"] = args.image_size
        data["augment"] = args.augment
    data.update(
        test_split=args.test_split, validation_split=args.validation_split
    )
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
                "lr": args.lr / 10,
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
    _print_result(run_recipe(recipe, args.output))
    return 0


def _export(args):
    from keras_hubkit.export import export_saved_model
    from keras_hubkit.loading import load

    if args.source.endswith(".keras"):
        import keras

        obj = keras.models.load_model(args.source, safe_mode=False)
    else:
        obj = load(args.source, allow_ops=args.allow_op or None)
    path = export_saved_model(
        obj, args.dest, overwrite=args.overwrite, tflite=args.tflite
    )
    print(f"Exported a reusable SavedModel to {path}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="hubkit",
        description="TF2 SavedModels and TF Hub models for Keras 3.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    demo = commands.add_parser(
        "demo",
        help="run the offline demo (no download)",
        description="Publish a small SavedModel, then reuse and fine-tune "
        "it with HubLayer, offline.",
    )
    demo.add_argument(
        "--output-dir", default="hubkit_demo", help="where results go"
    )
    demo.add_argument(
        "--quick", action="store_true", help="fewer epochs (for tests)"
    )
    demo.set_defaults(func=_demo)

    run = commands.add_parser(
        "run",
        help="run a recipe file (train, evaluate, export)",
        description="Run a recipe (TOML): data, handle, head, stage plan, "
        "optional search, export. See recipes/ for examples.",
    )
    run.add_argument("recipe", help="the recipe file")
    run.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a value, e.g. --set model.dropout=0.3 or "
        "--set stages.0.epochs=1 (repeatable)",
    )
    run.add_argument("--output", help="output folder (default: the recipe's)")
    run.set_defaults(func=_run)

    train = commands.add_parser(
        "train",
        help="train a classifier from a folder or CSV (common case)",
        description="Train a classifier: a HubLayer plus a head, trained on "
        "class folders (images or .txt files) or a CSV, then evaluated on a "
        "held-out split and exported (SavedModel, labels.txt, metrics.json, "
        "pictures).",
    )
    train.add_argument("--data", help="folder with one sub-folder per class")
    train.add_argument("--csv", help="CSV file with a text and a label column")
    train.add_argument(
        "--text", action="store_true", help="the class folders hold .txt files"
    )
    train.add_argument("--text-column", default="text")
    train.add_argument("--label-column", default="label")
    train.add_argument("--handle", required=True, help="path or URL")
    train.add_argument("--output", required=True, help="output folder")
    train.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"))
    train.add_argument(
        "--epochs", type=int, default=5, help="head-only epochs (default 5)"
    )
    train.add_argument(
        "--fine-tune-epochs",
        type=int,
        default=0,
        help="then epochs with the base unfrozen (default 0)",
    )
    train.add_argument("--lr", type=float, default=0.005)
    train.add_argument("--test-split", type=float, default=0.2)
    train.add_argument("--validation-split", type=float, default=0.0)
    train.add_argument(
        "--tflite", action="store_true", help="also write model.tflite"
    )
    train.add_argument(
        "--augment", action="store_true", help="flip/rotate/zoom"
    )
    train.set_defaults(func=_train)

    export = commands.add_parser(
        "export",
        help="re-export a model as a reusable SavedModel",
        description="Re-export a SavedModel handle or a .keras file as a "
        "reusable SavedModel (atomic).",
    )
    export.add_argument("source", help="a handle, or a .keras file")
    export.add_argument("dest", help="the folder to write")
    export.add_argument("--overwrite", action="store_true")
    export.add_argument("--tflite", action="store_true")
    export.add_argument("--allow-op", action="append", metavar="OP")
    export.set_defaults(func=_export)

    inspect = commands.add_parser(
        "inspect",
        help="show a model's scan report, signatures, variables and losses",
        description="Scan a SavedModel's ops (before anything runs), then "
        "load it and list its __call__ traces, signatures (inputs and "
        "outputs), variable counts and regularization losses.",
    )
    inspect.add_argument("handle", help="a path or URL")
    inspect.add_argument(
        "--allow-op",
        action="append",
        metavar="OP",
        help="accept this risky op (repeatable); see the scan report",
    )
    inspect.set_defaults(func=_inspect)

    cache = commands.add_parser(
        "cache",
        help="list, remove or clear downloaded models",
        description="The download cache (TFHUB_CACHE_DIR or a per-user "
        "folder).",
    )
    cache.add_argument("action", choices=["list", "remove", "clear"])
    cache.add_argument("handle", nargs="?", help="the handle to remove")
    cache.add_argument("--cache-dir", help="another cache folder")
    cache.set_defaults(func=_cache)
    from keras_hubkit.app import predict  # builds its parser without TF

    predict.add_command(commands)
    return parser


def main(argv=None):
    """Runs `hubkit` with `argv` (default: `sys.argv[1:]`)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    from keras_hubkit import errors

    try:
        return args.func(args)
    except errors.HubkitError as e:
        print(
            f"hubkit {args.command}: {type(e).__name__}: {e}", file=sys.stderr
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
