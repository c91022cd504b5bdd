"""Cheaper evaluation: the main job's scoring phase (train.video.evaluate) run again on a saved model at other
sampler settings, each timed and held to the speedrun's floors beside the setting the run used.

    python benchmarks/evaluation_levers.py runs/speedrun/seed0/model.pt
    python benchmarks/evaluation_levers.py runs/sora/model.pt --settings heun:20 heun:12 dpmpp_2m:12

A setting is SAMPLER:STEPS (any name of minisora.diffusion.SAMPLERS; Heun's k steps cost 2k - 1 network
evaluations, DPM-Solver++(2M)'s k). Each row prints the evaluation's seconds, every floor's score
(benchmarks/speedrun.py's), and each share's standard error over its clips (binomial: sqrt(p (1 - p) / n)): a
setting is as good as the first when every score moves by less than its standard error (issue 30's rule for the
speedrun's scoring). The sampling seed is the run's, so the first row repeats what the run itself scored.
"""
import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speedrun import FLOORS, scores_of  # noqa: E402

from minisora.trained_model import build_denoiser, load_model  # noqa: E402
from minisora.train.video import LOOP_AND_EDIT_CLIPS, evaluate  # noqa: E402
from minisora.train.video_data import held_out_clips  # noqa: E402

SHARES = ("text_trained", "text_unseen", "text_to_image", "identity", "loops")  # the floors that are shares of clips


def parse_setting(text: str):
    sampler, _, steps = text.partition(":")
    if not steps.isdigit() or int(steps) < 1:
        raise SystemExit(f"a setting is SAMPLER:STEPS, e.g. heun:12; got {text!r}")
    return sampler, int(steps)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a run's model.pt (the sora preset's, or any pixel-space tiny-world model)")
    parser.add_argument("--settings", nargs="+", default=["heun:20", "heun:12", "dpmpp_2m:20", "dpmpp_2m:12"])
    args = parser.parse_args()
    settings = [parse_setting(text) for text in args.settings]
    config, tokenizer, data_shape, denoiser, vae = load_model(args.model)
    config = replace(config, device="cpu")
    videos, captions = held_out_clips(config)
    torch.manual_seed(config.seed + 2)  # the untrained model the run scored beside its own
    untrained = build_denoiser(config, data_shape, len(tokenizer))
    names = [name for _, name, _, _ in FLOORS]
    print(f"{args.model}: {len(captions)} held-out clips, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\n")
    print("| setting | network evaluations a sample | evaluation s | " + " | ".join(names) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in names) + " |")
    for sampler, steps in settings:
        start = time.perf_counter()
        scored, _ = evaluate(replace(config, sampler=sampler, sampling_steps=steps), denoiser, untrained, tokenizer,
                             vae, videos, captions, data_shape, say=lambda *_: None)
        seconds = time.perf_counter() - start
        scores = scores_of(scored)
        cells = []
        for name in names:
            value = scores[name]
            if name not in SHARES:  # a track error in pixels: the median of the clips' errors
                cells.append(f"{value:.2f} px")
                continue
            clips = min(LOOP_AND_EDIT_CLIPS, config.held_out) if name == "loops" else config.held_out
            cells.append(f"{value:.3f} ± {math.sqrt(max(value * (1 - value), 1e-12) / clips):.3f}")
        evaluations = 2 * steps - 1 if sampler == "heun" else steps
        print(f"| {sampler}:{steps} | {evaluations} | {seconds:.0f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
