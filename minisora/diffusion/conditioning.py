"""Given frames: one mechanism for every way of prompting a video model with frames (image-to-video, extension
forward and backward, interpolation between two frames, loops, and editing).

A frame of the video is either generated or given. A given frame is known, clean: the network sees it as it is
(`models.video_dit.VideoDiT` puts it in place of the noisy frame and marks it), and the denoiser returns it
unchanged, so that every sampler, which only ever asks the denoiser for x_0, carries it through to the end
untouched. Nothing in the samplers changes (Open-Sora re-imposes given frames after every step; returning them as
the denoiser's x_0 is the same thing said once, for every sampler).

In training (`given_frames_batch`) the frames a task gives are left out of the loss: the model learns to generate
the others from them. The tasks are drawn per sample, so one model learns them all (Open-Sora's mask generator;
MCVD trains past, future and both at once).
"""
from typing import Callable, Optional

import torch
from torch import nn


def frames_axis(mask: torch.Tensor) -> torch.Tensor:
    """A per-frame mask (B, T) as (B, 1, T, 1, 1), to select frames of videos (B, C, T, H, W)."""
    return mask[:, None, :, None, None]


def hold_given_frames(denoised: torch.Tensor, given: torch.Tensor, given_mask: torch.Tensor) -> torch.Tensor:
    """The given frames of `given` where given_mask (B, T) is True, the denoised frames elsewhere."""
    return torch.where(frames_axis(given_mask.bool()), given.to(denoised.dtype), denoised)


def given_frames_denoise(denoiser: Callable, x: torch.Tensor, sigma: torch.Tensor, given: torch.Tensor,
                         given_mask: torch.Tensor, network_sees_frames: bool = True, **cond) -> torch.Tensor:
    """The given-frames denoiser: D'(x, sigma) = m * given + (1 - m) * D(x, sigma, given, m, **cond), m the mask
    (B, T) over the frames. The network is shown the given frames (and told which they are) when it was trained
    with them; with `network_sees_frames=False` it sees only the noisy state and the frames are held by
    replacement alone (Ho et al. 2022's replacement method). A ValueError for frames or a mask not shaped like x."""
    if given is None or given.shape != x.shape or given_mask.shape != (x.shape[0], x.shape[2]):
        raise ValueError(f"given frames need `given` shaped like x {tuple(x.shape)} and `given_mask` (B, T) = "
                         f"{(x.shape[0], x.shape[2])}; got {None if given is None else tuple(given.shape)} and "
                         f"{tuple(given_mask.shape)}")
    frames = dict(given=given, given_mask=given_mask) if network_sees_frames else {}
    return hold_given_frames(denoiser(x, sigma, **frames, **cond), given, given_mask)


class GivenFramesDenoiser(nn.Module):
    """A denoiser that holds the given frames at their clean values (`given_frames_denoise`), so that any sampler
    keeps them. A network that was never trained with given frames still gets them held (`network_sees_frames=False`
    does not pass them on): the replacement method of inpainting, for comparison. Without given_mask it is the
    denoiser itself."""

    def __init__(self, denoiser: Callable, network_sees_frames: bool = True):
        super().__init__()
        self.denoiser, self.network_sees_frames = denoiser, network_sees_frames

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, given: Optional[torch.Tensor] = None,
                given_mask: Optional[torch.Tensor] = None, **cond) -> torch.Tensor:
        if given_mask is None:
            return self.denoiser(x, sigma, **cond)
        return given_frames_denoise(self.denoiser, x, sigma, given, given_mask, self.network_sees_frames, **cond)


# the tasks a training sample can be given, each a way of choosing given frames of a T-frame clip
TASKS = ("text", "first", "last", "first_last", "head", "tail", "random")
# text        none: text-to-video (and text-to-image, with T = 1)
# first       frame 0: image-to-video
# last        frame T - 1: a video that ends on an image
# first_last  frames 0 and T - 1: connecting two frames (interpolation), and loops (the same frame at both ends)
# head        the first k, 1 <= k <= T / 2: extending a clip forward (and long videos chunk by chunk)
# tail        the last k: extending a clip backward
# random      each frame with probability 1/2, at least one left to generate


def parse_task_mix(text: str) -> dict:
    """"text:4,first:2,head:1" -> {"text": 4/7, "first": 2/7, "head": 1/7}: the share of training samples of each
    task (unnamed tasks are never drawn)."""
    mix = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        name, _, weight = part.partition(":")
        try:
            mix[name.strip()] = float(weight)
        except ValueError:
            mix[name.strip()] = -1.0
    unknown = sorted(set(mix) - set(TASKS))
    if unknown or not mix or any(weight < 0 for weight in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError(f"task mix {text!r} must be task:weight pairs, weights >= 0 and not all 0, tasks from "
                         f"{TASKS}{f' (unknown: {unknown})' if unknown else ''}; e.g. 'text:4,first:2,head:1'")
    total = sum(mix.values())
    return {name: weight / total for name, weight in mix.items()}


def gives_frames(mix: dict) -> bool:
    """Whether a task mix (`parse_task_mix`) ever gives frames: a task other than text alone has a share."""
    return any(share > 0 for name, share in mix.items() if name != "text")


def draw_given_masks(batch_size: int, frames: int, mix: dict, generator: Optional[torch.Generator] = None
                     ) -> torch.Tensor:
    """Given-frame masks (B, T), True where a frame is given, for tasks drawn per sample from `mix` (task -> share,
    `parse_task_mix`). A one-frame clip (an image) has nothing to condition on: every task is text there."""
    masks = torch.zeros(batch_size, frames, dtype=torch.bool)
    if frames == 1:
        return masks
    names = list(mix)
    tasks = torch.multinomial(torch.tensor([mix[name] for name in names], dtype=torch.float64), batch_size,
                              replacement=True, generator=generator)
    lengths = torch.randint(1, max(2, frames // 2 + 1), (batch_size,), generator=generator)  # k of head and tail
    coins = torch.rand(batch_size, frames, generator=generator) < 0.5  # for random
    positions = torch.arange(frames)
    for row, task in enumerate(tasks.tolist()):
        name = names[task]
        if name == "first":
            masks[row, 0] = True
        elif name == "last":
            masks[row, -1] = True
        elif name == "first_last":
            masks[row, [0, -1]] = True
        elif name == "head":
            masks[row] = positions < lengths[row]
        elif name == "tail":
            masks[row] = positions >= frames - lengths[row]
        elif name == "random":
            masks[row] = coins[row]
            masks[row, int(torch.randint(frames, (1,), generator=generator))] = False  # something to generate
    return masks
