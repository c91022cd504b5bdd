"""Why long videos drift, and what sampling can do about it: a trained model's 64-frame videos made window by window
(`generate.sample_long`, as `evaluation.score_long_videos` scores them) under several guidance scales, each window's
track error against the world's truth, beside how much of the truth runs against its caption in that window.

    python benchmarks/long_video_levers.py --checkpoint runs/sora/model.pt [--count 16] [--guidance 4 2 1]

The tiny worlds' objects bounce off the walls: a clip captioned "moving right" moves left after its first bounce.
Classifier-free guidance pushes every window towards its caption, and in a long video the caption is true of a
shrinking share of the frames; the given frames (the end of the last window) say where the object is going. The
table shows each window's median track error and the share of the true clip's steps that go against the caption.
No training: only sampling, with the model's own sampler and steps.
"""
import argparse
from dataclasses import replace

import torch

from minisora.evaluation import held_out_truth, score_long_videos
from minisora.generate import sample_latents
from minisora.scoring import score_given_frames
from minisora.trained_model import load_model
from tiny_datasets.videos import DIRECTIONS


def share_against_caption(captions, truths, window: int, frames: int) -> list:
    """For each window of the clips, the share of frame-to-frame steps that move against the captioned direction."""
    shares = []
    for start in range(0, frames, window):
        against = total = 0
        for caption, truth in zip(captions, truths):
            direction = next(name for name in DIRECTIONS if f" moving {name} " in f" {caption} ")
            dx, dy = DIRECTIONS[direction]
            span = truth[start:start + window]
            steps = [(b[0] - a[0]) * dx + (b[1] - a[1]) * dy for a, b in zip(span, span[1:])]
            against += sum(step < 0 for step in steps)
            total += len(steps)
        shares.append(against / total)
    return shares


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="runs/sora/model.pt")
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--guidance", type=float, nargs="+", default=[4.0, 2.0, 1.0])
    args = parser.parse_args()
    config, tokenizer, data_shape, denoiser, _ = load_model(args.checkpoint)
    if config.dataset == "ball":
        raise ValueError("the ball world's captions name a direction the ball keeps; use a shapes model")
    window = data_shape[1]
    videos, captions, truths = held_out_truth(config, args.frames, args.count)
    shares = share_against_caption(captions, truths, window, args.frames)
    print(f"{args.checkpoint}: {args.count} held-out clips, {args.frames} frames made {window} at a time "
          f"(half a window given from the truth, then the end of each window), sampler {config.sampler} "
          f"{config.sampling_steps} steps, guidance above sigma {config.guidance_min_sigma}\n")
    windows = range(0, args.frames, window)
    print("| | " + " | ".join(f"frames {start}-{start + window - 1}" for start in windows) + " |")
    print("| --- " * (1 + len(windows)) + "|")
    print("| truth's steps against the caption | " + " | ".join(f"{share:.0%}" for share in shares) + " |")
    ids = tokenizer.encode(captions, config.caption_length)
    cells = []
    for start in windows:  # teacher forcing: the window's first half from the world, its second half made
        mask = torch.zeros(args.count, window, dtype=torch.bool)
        mask[:, :window // 2] = True
        made = sample_latents(denoiser, ids, data_shape, config.sampler, config.sampling_steps, config.guidance,
                              config.seed + 1, config.guidance_min_sigma, given=videos[:, :, start:start + window],
                              given_mask=mask).clamp(-1, 1)
        score = score_given_frames(made, captions, config.dataset, [truth[start:start + window] for truth in truths],
                                   mask)
        cells.append(f"{score['track_error_px']:.1f} px, identity {score['identity']:.0%}")
    print(f"| the truth's first half of each window given (guidance {config.guidance:g}) | " + " | ".join(cells)
          + " |", flush=True)
    for guidance in args.guidance:
        torch.manual_seed(0)
        scores = score_long_videos(denoiser, tokenizer, replace(config, guidance=guidance), data_shape,
                                   args.frames, args.count)
        cells = [f"{chunk['track_error_px']:.1f} px, identity {chunk['identity']:.0%}" for chunk in scores["chunks"]]
        print(f"| guidance {guidance:g}: track error (median), identity | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
