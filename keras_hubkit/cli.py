"""The `hubkit` command line."""

import argparse
import os
import sys


def _demo(args):
    from keras_hubkit import demo

    demo.run(args.output_dir, quick=args.quick)
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
    return parser


def main(argv=None):
    """Runs `hubkit` with `argv` (default: `sys.argv[1:]`)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
