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
captions without motion, at sizes trained on or never seen.
"""
from typing import Dict, Optional

import torch

from .generate import sample_latents
from .scoring import score_given_frames, score_images, score_videos
from tiny_datasets.videos import video_dataset

HELD_OUT_SEED_OFFSET = 7919  # held-out clips come from the run's seed + this, a seed its training never uses
GIVEN_FRAME_TASKS = ("image_to_video", "extend_forward", "extend_backward", "interpolate")


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
            samples = sample_latents(denoiser, ids, data_shape, config.sampler, config.sampling_steps,
                                     config.guidance, config.seed + 1, config.guidance_min_sigma, given=videos,
                                     given_mask=mask).clamp(-1, 1)
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
    samples = sample_latents(denoiser, ids, (3, frames, height, width), config.sampler, config.sampling_steps,
                             config.guidance, config.seed + 1, config.guidance_min_sigma).clamp(-1, 1)
    scorer = score_images if frames == 1 else score_videos
    return scorer(samples, captions, config.dataset)
