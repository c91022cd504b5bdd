"""Every way of prompting the model, scored against the world's truth on held-out clips and captions.

A tiny world knows the true answer of every task: the frames before and after any clip, and its object's position
in each of them (tiny_datasets/videos.py). So each task is scored as no public video model can be, by the distance
of what it drew from what the world would have shown (scoring.py reads the frames):

  text_to_video   the caption alone: adherence (colour, shape, direction), motion, permanence
  image_to_video  frame 0 of a held-out clip given: its object goes on as the truth does
  extend_forward  the first half of a clip given: the second half against the truth
  extend_backward the second half given: the first half against the truth
  interpolate     the first and the last frame given: the frames between against the truth

and text alone at any size (`score_text_at`): clips against their captions, one-frame clips (images) against
captions without motion, at sizes trained on or never seen; loops (`score_loops`: does the last frame lead into
the first?), long videos chunk by chunk (`score_long_videos`: track error per chunk against the truth), and SDEdit's
trade-off between following a new caption and staying near the source clip (`score_sdedit`).
"""
import math
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from .generate import sample_latents, sample_long, sample_loop
from .plotting import draw_line_plot
from .scoring import read_video, score_given_frames, score_images, score_video, score_videos
from tiny_datasets.shapes import COLOURS
from tiny_datasets.videos import DIRECTIONS, video_dataset

HELD_OUT_SEED_OFFSET = 7919  # held-out clips come from the run's seed + this, a seed its training never uses
GIVEN_FRAME_TASKS = ("image_to_video", "extend_forward", "extend_backward", "interpolate")


def sample_as_configured(denoiser: torch.nn.Module, caption_ids: torch.Tensor, config, data_shape,
                         **options) -> torch.Tensor:
    """`generate.sample_latents` with the run's sampler, steps, guidance and sampling seed (config.seed + 1), clamped
    to [-1, 1]; `options` are its given frames or SDEdit start."""
    return sample_latents(denoiser, caption_ids, data_shape, config.sampler, config.sampling_steps, config.guidance,
                          config.seed + 1, config.guidance_min_sigma, **options).clamp(-1, 1)


def task_mask(task: str, count: int, frames: int) -> torch.Tensor:
    """The given frames (count, frames) of an evaluation task."""
    mask = torch.zeros(count, frames, dtype=torch.bool)
    half = frames // 2
    if task == "image_to_video":
        mask[:, 0] = True
    elif task == "extend_forward":
        mask[:, :half] = True
    elif task == "extend_backward":
        mask[:, frames - half:] = True
    elif task == "interpolate":
        mask[:, [0, -1]] = True
    else:
        raise ValueError(f"unknown task {task!r}; choose one of {GIVEN_FRAME_TASKS}")
    return mask


def held_out_truth(config, frames: int, count: Optional[int] = None, height: Optional[int] = None,
                   width: Optional[int] = None):
    """`count` held-out clips of `frames` frames of config's world (image_size square unless given), from the
    seed training never uses: (videos (N, 3, T, H, W), captions, each clip's true centres)."""
    count = count or config.held_out
    world = video_dataset(config.dataset, num_items=count, height=height or config.image_size,
                          width=width or config.image_size, num_frames=frames, seed=config.seed + HELD_OUT_SEED_OFFSET)
    items = [world[index] for index in range(count)]
    return (torch.stack([item["video"] for item in items]), [item["caption"] for item in items],
            [item["truth"][0].positions for item in items])


@torch.no_grad()
def score_tasks(denoiser: Optional[torch.nn.Module], tokenizer, config, data_shape, tasks=GIVEN_FRAME_TASKS,
                count: Optional[int] = None) -> Dict[str, dict]:
    """Scores of each given-frame task on `count` held-out clips of config's world (config.held_out by default):
    {task: score_given_frames(...)}. `config` is a train.video.VideoConfig of a pixel-space model. Without a
    denoiser, the real clips are scored: the ceiling the scorer allows."""
    if config.space != "pixel":
        raise ValueError("given-frame tasks are scored for pixel-space models; a latent model's frames would have to "
                         "be coded by its VAE first (not done yet)")
    videos, captions, truths = held_out_truth(config, data_shape[1], count)
    ids = tokenizer.encode(captions, config.caption_length) if denoiser is not None else None
    results = {}
    for task in tasks:
        mask = task_mask(task, len(videos), videos.shape[2])
        samples = videos
        if denoiser is not None:
            samples = sample_as_configured(denoiser, ids, config, data_shape, given=videos, given_mask=mask)
        results[task] = score_given_frames(samples, captions, config.dataset, truths, mask)
    return results


def describe_task_scores(task: str, scores: dict) -> str:
    """One line of a given-frame task's scores."""
    return (f"{task:<16} track error {scores['track_error_px']:.2f} px (within 2 px {scores['track_within_2px']:.0%}), "
            f"identity {scores['identity']:.0%}, moving {scores['moving']:.0%}, adherence {scores['adherence']:.0%}")


@torch.no_grad()
def score_text_at(denoiser: torch.nn.Module, tokenizer, config, frames: int, height: int, width: int,
                  count: Optional[int] = None) -> dict:
    """Text alone at frames x height x width: held-out captions (without motion for one frame) sampled and scored
    (`score_videos`, or `score_images` for one frame). A latent model samples at its own size only."""
    if config.space != "pixel":
        raise ValueError("text at other sizes is scored for pixel-space models; a latent model has its VAE's size")
    _, captions, _ = held_out_truth(config, frames, count, height, width)
    ids = tokenizer.encode(captions, config.caption_length)
    samples = sample_as_configured(denoiser, ids, config, (3, frames, height, width))
    scorer = score_images if frames == 1 else score_videos
    return scorer(samples, captions, config.dataset)


def object_centres(video: torch.Tensor) -> Optional[np.ndarray]:
    """The object's centre in pixels in every frame of a video (3, T, H, W), (T, 2); None if a frame has none."""
    readings = read_video(video)
    if any(reading.centre is None for reading in readings):
        return None
    return np.asarray([reading.centre for reading in readings]) * (video.shape[-1], video.shape[-2])


@torch.no_grad()
def score_loops(denoiser: torch.nn.Module, tokenizer, config, data_shape, count: int = 32) -> dict:
    """Loops for held-out captions (`generate.sample_loop`): where the last frame's object is against where the
    first frame's is (`seam_px`, the median over clips) beside the median step between neighbouring frames within
    the clip (`step_px`); a seamless loop's seam is one ordinary step. `seamless`: the share whose seam is at most
    twice the clip's own median step (or 2 px)."""
    _, captions, _ = held_out_truth(config, data_shape[1], count)
    ids = tokenizer.encode(captions, config.caption_length)
    loops = sample_loop(denoiser, ids, (data_shape[0], data_shape[1] - 1, *data_shape[2:]), config.sampler,
                        config.sampling_steps, config.guidance, config.seed + 1, config.guidance_min_sigma)
    seams, steps, seamless = [], [], []
    for video in loops.clamp(-1, 1):
        centres = object_centres(video)
        if centres is None:
            seams.append(math.inf), seamless.append(False)
            continue
        step = float(np.median(np.linalg.norm(np.diff(centres, axis=0), axis=1)))
        seam = float(np.linalg.norm(centres[0] - centres[-1]))
        seams.append(seam), steps.append(step), seamless.append(seam <= max(2.0, 2 * step))
    return {"seam_px": float(np.median(seams)), "step_px": float(np.median(steps)) if steps else math.inf,
            "seamless": float(np.mean(seamless))}


@torch.no_grad()
def score_long_videos(denoiser: torch.nn.Module, tokenizer, config, data_shape, frames: int = 64,
                      count: int = 16) -> dict:
    """Long videos chunk by chunk (`generate.sample_long`): held-out clips' first half window given, `frames` frames
    made, scored window by window against the world's truth (`score_given_frames` per chunk): does the object keep
    what it is and where the world would have it, or drift as chunks pile up?"""
    window = data_shape[1]
    videos, captions, truths = held_out_truth(config, frames, count)
    mask = torch.zeros(count, frames, dtype=torch.bool)
    mask[:, :window // 2] = True
    ids = tokenizer.encode(captions, config.caption_length)
    made = sample_long(denoiser, ids, (data_shape[0], frames, *data_shape[2:]), window, config.sampler,
                       config.sampling_steps, config.guidance, config.seed + 1, config.guidance_min_sigma,
                       given=videos, given_mask=mask).clamp(-1, 1)
    chunks = []
    for start in range(0, frames, window):
        span = slice(start, min(start + window, frames))
        chunks.append({"first_frame": start, **score_given_frames(made[:, :, span], captions, config.dataset,
                                                                  [truth[span] for truth in truths], mask[:, span])})
    return {"frames": frames, "window": window, "chunks": chunks}


def other_caption(caption: str, dataset: str) -> str:
    """The caption with its colour swapped for the next in the palette (shapes, ball), or its direction reversed
    (digits): the edit SDEdit is asked to make."""
    words = caption.split()
    colours = list(COLOURS)
    for index, word in enumerate(words):
        if dataset != "digits" and word in COLOURS:
            words[index] = colours[(colours.index(word) + 1) % len(colours)]
            return " ".join(words)
        if dataset == "digits" and word in DIRECTIONS:
            words[index] = next(name for name, (x, y) in DIRECTIONS.items()
                                if (x, y) == (-DIRECTIONS[word][0], -DIRECTIONS[word][1]))
            return " ".join(words)
    raise ValueError(f"caption {caption!r} has no colour or direction to change")


@torch.no_grad()
def score_sdedit(denoiser: torch.nn.Module, tokenizer, config, data_shape,
                 strengths=(0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), count: int = 32) -> list:
    """SDEdit's trade-off (Meng et al. 2022): held-out clips redrawn under a caption with another colour (digits:
    the other direction), at each strength: the share whose colour (direction) became the new caption's
    (`changed`) against how far the object's track moved from the source clip's (`track_error_px`, the median of
    the per-clip mean distance over all frames)."""
    videos, captions, truths = held_out_truth(config, data_shape[1], count)
    edited_captions = [other_caption(caption, config.dataset) for caption in captions]
    ids = tokenizer.encode(edited_captions, config.caption_length)
    attribute = "direction" if config.dataset == "digits" else "colour"
    curve, nothing_given = [], torch.zeros(count, data_shape[1], dtype=torch.bool)
    for strength in strengths:
        edited = sample_as_configured(denoiser, ids, config, data_shape, start=videos, strength=strength)
        changed = [score_video(video, caption, config.dataset).get(attribute, 0.0)
                   for video, caption in zip(edited, edited_captions)]
        kept = score_given_frames(edited, captions, config.dataset, truths, nothing_given)
        curve.append({"strength": strength, "changed": float(np.mean(changed)),
                      "track_error_px": kept["track_error_px"]})
    return curve


def draw_task_plots(long_videos: dict, sdedit: list, folder) -> None:
    """long_videos.png (track error per chunk) and sdedit.png (the share edited against the drift from the source)."""
    chunks = long_videos["chunks"]
    draw_line_plot({"track error (px, median)": ([chunk["first_frame"] for chunk in chunks],
                                                 [chunk["track_error_px"] for chunk in chunks]),
                    "identity kept (x10)": ([chunk["first_frame"] for chunk in chunks],
                                            [10 * chunk["identity"] for chunk in chunks])},
                   Path(folder) / "long_videos.png", f"{long_videos['frames']} frames from a "
                   f"{long_videos['window']}-frame model, chunk by chunk", "chunk's first frame", "")
    draw_line_plot({"": ([point["track_error_px"] for point in sdedit], [point["changed"] for point in sdedit])},
                   Path(folder) / "sdedit.png", "SDEdit: strengths " + ", ".join(f"{point['strength']:g}"
                                                                                  for point in sdedit),
                   "drift from the source (px)", "share edited")
