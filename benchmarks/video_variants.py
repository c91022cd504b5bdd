"""The command line the text-to-video variant benchmarks share: variants of the tiny preset picked with --only,
changed for every variant with --set, each trained from scratch by `run_video` into its own folder under --out,
and the table so far printed after each run (a long series can be read while it runs)."""
import argparse
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, List, Tuple

from minisora.config import apply_overrides
from minisora.train.video import run_video
from minisora.video_config import VIDEO_PRESETS, VideoConfig


def run_variants(description: str, variants: Dict[str, dict], default_out: str,
                 print_table: Callable[[List[Tuple[str, VideoConfig, dict]]], None]) -> None:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(variants), default=list(variants))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every variant")
    parser.add_argument("--out", default=default_out)
    args = parser.parse_args()
    rows = []
    for name in args.only:
        config = apply_overrides(replace(VIDEO_PRESETS["tiny"], **variants[name]), [f"--{item}" for item in args.set])
        config = replace(config, out_dir=str(Path(args.out) / name.replace(" ", "_").replace(",", "")))
        rows.append((name, config, run_video(config, progress=False)))
        print_table(rows)
