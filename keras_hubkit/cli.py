"""The `hubkit` command line."""

import argparse
import os
import sys


def _demo(args):
    from keras_hubkit import demo

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
    from keras_hubkit._describe import describe

    text, loaded = describe(args.handle, allow_ops=args.allow_op or None)
    print(text)
    return 0 if loaded else 2


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
