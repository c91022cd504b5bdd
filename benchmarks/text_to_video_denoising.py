"""Where a trained text-to-video model goes wrong: how well it denoises real held-out clips at each flow time t, and
which shapes its own samples come out as.

    python benchmarks/text_to_video_denoising.py runs/tiny/model.pt [--clips 64]

Four tables: (1) the mean-square error of the model's x0 (its clean-end expert's below the switch) from
x_t = (1 - t) x_0 + t eps against returning x_t / (1 - t) unchanged (the identity: the better answer near the clean
end for a model that cannot denoise there); (2) the fill of the object's bounding box (minisora.scoring reads a
square above 0.89, a circle above 0.64) in the real clips and in the model's x0 of them at each t, per shape asked
for; (3) the same fill when the caption names another shape than the clip shows (does the model listen to the shape
word?); (4) the shapes the scorer reads in the model's guided samples (the preset's sampler, steps and guidance)
against the shapes asked for. About a minute on 2 CPU cores for the tiny preset. For pixel-space models of the
shapes world (the tiny preset).
"""
import argparse
from collections import Counter

import numpy as np
import torch

from minisora.diffusion.flow import Path as FlowPath, velocity_from_denoiser
from minisora.scoring import caption_attributes, majority_shape, read_video
from minisora.trained_model import load_model
from minisora.train.video import held_out_clips, score_samples
from tiny_datasets.shapes import SHAPES

TIMES = (0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
SWAP_TIMES = (0.05, 0.3, 0.7)  # where the caption's shape word is swapped


def present_readings(video: torch.Tensor) -> list:
    """The scorer's readings of the frames of `video` that hold an object."""
    return [reading for reading in read_video(video) if reading.centre is not None]


def median_fill(video: torch.Tensor) -> float:
    """The median over frames of the object's fill of its bounding box (frames with no object left out)."""
    fills = [reading.fill for reading in present_readings(video)]
    return float(np.median(fills)) if fills else float("nan")


@torch.no_grad()
def denoised(denoiser, clips: torch.Tensor, noise: torch.Tensor, t: float, caption_ids: torch.Tensor) -> torch.Tensor:
    """The model's x0 of the clips noised to x_t = (1 - t) x_0 + t eps (its clean-end expert's below the switch)."""
    _, x0, _ = velocity_from_denoiser(denoiser, FlowPath("linear"), (1 - t) * clips + t * noise, t,
                                      {"caption": caption_ids})
    return x0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a model.pt written by `python -m minisora train`")
    parser.add_argument("--clips", type=int, default=64, help="held-out clips to denoise (at most the model's)")
    args = parser.parse_args()
    config, tokenizer, data_shape, denoiser, vae = load_model(args.model)
    if config.dataset != "shapes":
        raise SystemExit(f"{args.model} was trained on {config.dataset!r}; the shape tables need the shapes world")
    if vae is not None:
        raise SystemExit(f"{args.model} is a latent model; this benchmark noises pixels (train one with space=pixel)")
    clips, captions = held_out_clips(config)
    clips, captions = clips[:args.clips], captions[:args.clips]
    ids = tokenizer.encode(captions, config.caption_length)
    noise = torch.randn(clips.shape, generator=torch.Generator().manual_seed(0))
    wanted = [caption_attributes(caption, "shapes")["shape"] for caption in captions]
    by_shape = {shape: [index for index, name in enumerate(wanted) if name == shape] for shape in SHAPES}

    errors, fills = [], {shape: [np.mean([median_fill(clips[i]) for i in by_shape[shape]])] for shape in SHAPES}
    denoiser.eval()
    for t in TIMES:
        x0 = denoised(denoiser, clips, noise, t, ids)
        # x_t / (1 - t) - x_0 = t / (1 - t) eps
        errors.append(((x0 - clips).pow(2).mean().item(), (t / (1 - t) * noise).pow(2).mean().item()))
        for shape in SHAPES:
            fills[shape].append(np.nanmean([median_fill(x0[i]) for i in by_shape[shape]]))

    print(f"{args.model}: {len(clips)} held-out clips of {config.dataset}\n")
    print("| t | " + " | ".join(f"{t}" for t in TIMES) + " |")
    print("| --- |" + " --- |" * len(TIMES))
    print("| the model's x0 error (mean square) | " + " | ".join(f"{model:.4f}" for model, _ in errors) + " |")
    print("| x_t / (1 - t), the identity | " + " | ".join(f"{identity:.4g}" for _, identity in errors) + " |")
    print("\n| shape asked for (clips) | real clips | " + " | ".join(f"x0 at t = {t}" for t in TIMES) + " |")
    print("| --- | --- |" + " --- |" * len(TIMES))
    for shape in SHAPES:
        print(f"| {shape} ({len(by_shape[shape])}) | " + " | ".join(f"{fill:.2f}" for fill in fills[shape]) + " |")

    print("\n| real clips of | captioned as | " + " | ".join(f"x0 fill at t = {t}" for t in SWAP_TIMES) + " |")
    print("| --- | --- |" + " --- |" * len(SWAP_TIMES))
    for shown in SHAPES:
        for named in SHAPES:
            which = by_shape[shown]
            swapped = tokenizer.encode([captions[i].replace(shown, named) for i in which], config.caption_length)
            row = [np.nanmean([median_fill(video) for video in denoised(denoiser, clips[which], noise[which], t,
                                                                        swapped)]) for t in SWAP_TIMES]
            print(f"| {shown} | {named} | " + " | ".join(f"{fill:.2f}" for fill in row) + " |")

    scores, videos = score_samples(denoiser, tokenizer, vae, captions, config, data_shape)
    read = Counter((asked, majority_shape(present_readings(video)) or "none") for asked, video in zip(wanted, videos))
    print(f"\nthe model's samples ({config.sampler}, {config.sampling_steps} steps, guidance {config.guidance} above "
          f"sigma {config.guidance_min_sigma}): shape {scores['shape']:.0%}, adherence {scores['adherence']:.0%}\n")
    readings = [*SHAPES, "none"]
    print("| asked for \\ read as | " + " | ".join(readings) + " |")
    print("| --- |" + " --- |" * len(readings))
    for shape in SHAPES:
        print(f"| {shape} | " + " | ".join(str(read[(shape, name)]) for name in readings) + " |")


if __name__ == "__main__":
    main()
