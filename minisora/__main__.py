"""The command line: `python -m minisora train --preset toy2d [--key=value ...]`."""
import argparse
import sys

from .config import apply_overrides

PRESETS = ("toy2d",)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minisora", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a model from a preset; override any field as --key=value")
    train.add_argument("--preset", default="toy2d", choices=PRESETS, help="which configuration to start from")
    arguments, overrides = parser.parse_known_args(argv)
    if arguments.command == "train":
        from .train.toy2d import Toy2DConfig, run_toy2d

        try:
            config = apply_overrides(Toy2DConfig(), overrides)
        except ValueError as error:
            parser.error(str(error))
        run_toy2d(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
