"""The command line: `python -m minisora train --preset toy2d|images|vae [--key=value ...]`,
`python -m minisora data [--key=value ...]` (write a tiny video dataset to disk) and
`python -m minisora memory --preset 256px|480p|tiny [--key=value ...]` (will a training configuration fit the GPU?)."""
import argparse
import sys

from .config import apply_overrides

PRESETS = ("toy2d", "images", "vae")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minisora", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a model from a preset; override any field as --key=value")
    train.add_argument("--preset", default="toy2d", choices=PRESETS, help="which configuration to start from")
    commands.add_parser("data", help="write a tiny video dataset (.mp4 files + captions.jsonl); override --key=value")
    memory = commands.add_parser("memory", help="plan a training step's GPU memory; override any field as --key=value")
    memory.add_argument("--preset", default="256px", choices=("256px", "480p", "tiny"), help="configuration to plan")
    arguments, overrides = parser.parse_known_args(argv)
    if arguments.command == "data":
        from .data.tiny import TinyDataConfig as Config, write_tiny_dataset as run
    elif arguments.command == "memory":
        from dataclasses import replace

        from .memory import MEMORY_PRESETS, run_memory as run

        def Config():
            return replace(MEMORY_PRESETS[arguments.preset])
    elif arguments.preset == "toy2d":
        from .train.toy2d import Toy2DConfig as Config, run_toy2d as run
    elif arguments.preset == "images":
        from .train.images import ImagesConfig as Config, run_images as run
    else:
        from .train.vae import VAEConfig as Config, run_vae as run
    try:
        config = apply_overrides(Config(), overrides)
    except ValueError as error:
        parser.error(str(error))
    try:
        run(config)
    except (ValueError, FileNotFoundError, FloatingPointError) as error:  # bad settings: say so, no traceback
        parser.exit(2, f"error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
