"""Prompting a trained video model: text, and frames given with it (image-to-video, extension forward and
backward, interpolation, loops), at any size and length the model's patches divide.

Every task is one call: `sample_latents(denoiser, captions, shape, ..., given, given_mask)`. The given frames are
held by `diffusion.conditioning.GivenFramesDenoiser` through whichever sampler runs, and guidance pushes towards
the caption alone: its unconditional branch drops the caption and keeps the frames (as CogVideoX guides
image-to-video), so the frames are never extrapolated away from.
"""
import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import torch

from .data.video_io import read_image, read_video
from .diffusion import get_sampler
from .diffusion.conditioning import GivenFramesDenoiser, hold_given_frames
from .diffusion.guidance import GuidedDenoiser
from .diffusion.schedules import karras_sigmas
from .models.text import PAD
from .randomness import randn

KARRAS_SIGMA_MAX = 80.0  # where sampling from pure noise starts (Karras et al. 2022)


def edit_sigma(strength: float) -> float:
    """SDEdit's starting noise level for a strength S in (0, 1]: the linear flow path's time S, as EDM's
    sigma = S / (1 - S) (equal noise-to-signal), capped at the pure-noise start."""
    if not 0 < strength <= 1:
        raise ValueError(f"strength must be in (0, 1] (0 keeps the video as it is, 1 draws it anew), got {strength}")
    return KARRAS_SIGMA_MAX if strength >= KARRAS_SIGMA_MAX / (1 + KARRAS_SIGMA_MAX) else strength / (1 - strength)


@torch.no_grad()
def sample_latents(denoiser: torch.nn.Module, caption_ids: torch.Tensor, data_shape: Sequence[int], sampler: str,
                   steps: int, guidance: float, seed: int, guidance_min_sigma: float = 0.0,
                   given: Optional[torch.Tensor] = None, given_mask: Optional[torch.Tensor] = None,
                   start: Optional[torch.Tensor] = None, strength: float = 1.0, network_sees_frames: bool = True,
                   callback: Optional[Callable] = None) -> torch.Tensor:
    """One sample (N, C, T, H, W) of `data_shape` (C, T, H, W) per caption (N, M), on Karras noise levels, guided
    above `guidance_min_sigma`; with given_mask (N, T), the frames of `given` (N, C, T, H, W) it marks are kept and
    come back exactly as given (shown to the network, or with `network_sees_frames=False` held by replacement
    alone). With `start` (N, C, T, H, W) and `strength` S in (0, 1], SDEdit (Meng et al. 2022): the start noised to
    the flow time S (EDM's sigma = S / (1 - S), at most 80) and denoised from there. `callback` gets the sampler's
    report of each step ({"i", "x", "sigma", "denoised"}: the state and the guided estimate of x_0)."""
    device = next(denoiser.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    sigma_max = KARRAS_SIGMA_MAX if start is None else edit_sigma(strength)
    sigmas = karras_sigmas(steps, sigma_min=min(0.002, sigma_max / 2), sigma_max=sigma_max).to(device)
    noise = randn((len(caption_ids), *data_shape), generator, device) * sigmas[0]
    if start is not None:
        if start.shape != noise.shape:
            raise ValueError(f"the video to edit must be {tuple(noise.shape)}, got {tuple(start.shape)}")
        # x = x_0 + sigma_S eps: the start, noised part of the way
        noise = start.to(device) + noise
    cond = {"caption": caption_ids.to(device)}
    if given_mask is not None:
        if given is None or given.shape != noise.shape or given_mask.shape != noise.shape[:1] + noise.shape[2:3]:
            raise ValueError(f"given frames must be (N, C, T, H, W) = {tuple(noise.shape)} with a mask (N, T); got "
                             f"{None if given is None else tuple(given.shape)} and {tuple(given_mask.shape)}")
        cond.update(given=given.to(device), given_mask=given_mask.to(device))
    guided = GuidedDenoiser(GivenFramesDenoiser(denoiser.eval(), network_sees_frames), guidance, {"caption": PAD},
                            interval=(guidance_min_sigma, math.inf), kept=("given", "given_mask"))
    samples = get_sampler(sampler)(guided, noise, sigmas, cond=cond, generator=generator, callback=callback).cpu()
    if given_mask is not None:  # exactly, not to the sampler's last rounding
        samples = hold_given_frames(samples, given.cpu(), given_mask.cpu())
    return samples


@torch.no_grad()
def sample_loop(denoiser: torch.nn.Module, caption_ids: torch.Tensor, data_shape: Sequence[int], sampler: str,
                steps: int, guidance: float, seed: int, guidance_min_sigma: float = 0.0,
                first: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Seamless loops (N, C, T, H, W): T + 1 frames made with the first frame given at both ends, the last (the
    first again) dropped, so that frame T - 1 leads into frame 0 as any frame leads into the next. The first frame
    is `first` (N, C, 1, H, W), or frame 0 of a clip drawn for the caption."""
    channels, frames, height, width = data_shape
    if first is None:
        first = sample_latents(denoiser, caption_ids, data_shape, sampler, steps, guidance, seed,
                               guidance_min_sigma)[:, :, :1]
    given = torch.zeros(len(caption_ids), channels, frames + 1, height, width)
    mask = torch.zeros(len(caption_ids), frames + 1, dtype=torch.bool)
    given[:, :, [0, -1]], mask[:, [0, -1]] = first.expand(-1, -1, 2, -1, -1), True
    return sample_latents(denoiser, caption_ids, (channels, frames + 1, height, width), sampler, steps, guidance,
                          seed + 1, guidance_min_sigma, given=given, given_mask=mask)[:, :, :frames]


def chunk_starts(total: int, window: int, context: int, backward: bool = False) -> list:
    """Where each window of `window` frames starts, to cover `total` frames with `context` frames of overlap
    between neighbours: forward from frame 0 (the last window ends at the last frame), or backward from the end."""
    if total <= window:
        return [0]
    step = window - context
    starts = list(range(0, total - window, step)) + [total - window]
    return [total - window - start for start in starts] if backward else starts


@torch.no_grad()
def sample_long(denoiser: torch.nn.Module, caption_ids: torch.Tensor, data_shape: Sequence[int], window: int,
                sampler: str, steps: int, guidance: float, seed: int, guidance_min_sigma: float = 0.0,
                given: Optional[torch.Tensor] = None, given_mask: Optional[torch.Tensor] = None,
                backward: bool = False) -> torch.Tensor:
    """Videos (N, C, T, H, W) of any length T made `window` frames at a time (the length the model trained on):
    each window after the first is given the half window it shares with the frames made before it (and any frames
    given by the caller), the way Open-Sora extends a video and Diffusion Forcing rolls out. Forward from the first
    frame, or `backward` from the last (extending a clip into its past)."""
    count, (channels, total, height, width) = len(caption_ids), data_shape
    made = torch.zeros(count, channels, total, height, width) if given is None else given.detach().cpu().clone()
    known = torch.zeros(count, total, dtype=torch.bool) if given_mask is None else given_mask.cpu().clone()
    for chunk, first in enumerate(chunk_starts(total, window, window // 2, backward)):
        frames = slice(first, first + min(window, total))
        if known[:, frames].all():
            continue
        chunk_mask = known[:, frames]
        videos = sample_latents(denoiser, caption_ids, (channels, frames.stop - first, height, width), sampler,
                                steps, guidance, seed + chunk, guidance_min_sigma,
                                given=made[:, :, frames] if chunk_mask.any() else None,
                                given_mask=chunk_mask if chunk_mask.any() else None)
        made[:, :, frames] = videos
        known[:, frames] = True
    return made


def parse_size(text: str) -> Tuple[int, int]:
    """"32x48" -> (32, 48): height x width in pixels."""
    try:
        height, width = (int(side) for side in text.lower().split("x"))
    except ValueError:
        height = width = 0
    if height < 1 or width < 1:
        raise ValueError(f"size {text!r} must be two positive sides HxW in pixels, e.g. 32x48")
    return height, width


@dataclass
class Prompting:
    """What `python -m minisora sample` is asked beyond the caption: the output's length and size, and the frames
    given with the caption (None where not asked for)."""
    frames: Optional[int] = None  # frames per output; the model's training length by default
    size: Optional[str] = None  # HxW of the output; the model's training size by default
    first_frame: Optional[str] = None  # an image file: the first frame (image-to-video)
    last_frame: Optional[str] = None  # an image file: the last frame (with first_frame: connect the two)
    extend: Optional[str] = None  # a video file to continue: the output starts with its frames
    extend_backward: Optional[str] = None  # a video file to lead into: the output ends with its frames
    loop: bool = False  # the last frame leads back into the first (a seamless loop)
    edit: Optional[str] = None  # a video file to redraw under the caption (SDEdit), as far as `strength` says
    strength: Optional[float] = None  # SDEdit's strength in (0, 1]: how much of the video is noised away

    def check(self) -> None:
        """Clear errors for what cannot go together, before anything is loaded."""
        if self.frames is not None and self.frames < 1:
            raise ValueError(f"--frames must be at least 1 (1 makes images), got {self.frames}")
        if self.size is not None:
            parse_size(self.size)
        videos = [name for name, value in (("--extend", self.extend), ("--extend-backward", self.extend_backward),
                                           ("--edit", self.edit)) if value]
        images = [name for name, value in (("--first-frame", self.first_frame), ("--last-frame", self.last_frame),
                                           ("--loop", self.loop)) if value]
        if len(videos) > 1 or (videos and images):
            raise ValueError(f"{' and '.join(videos + images)} cannot be combined: give one video to extend or edit, "
                             f"or frames (--first-frame, --last-frame, --loop)")
        if self.loop and self.last_frame:
            raise ValueError("--loop sets the last frame itself (to lead back into the first); drop --last-frame")
        if self.edit and self.strength is None:
            raise ValueError("--edit needs --strength S in (0, 1]: how much of the video to redraw (0.5 is halfway)")
        if self.strength is not None:
            if not self.edit:
                raise ValueError("--strength is for --edit VIDEO (SDEdit); give the video to edit")
            edit_sigma(self.strength)
        if self.frames == 1 and (videos or self.last_frame or self.loop):
            raise ValueError("--frames 1 makes images: --extend, --edit, --last-frame and --loop need a video")

    @property
    def gives_frames(self) -> bool:
        return bool(self.first_frame or self.last_frame or self.extend or self.extend_backward or self.loop)


def read_sized(path: str, kind: str, height: int, width: int) -> torch.Tensor:
    """An image (3, 1, H, W) or a video (3, T, H, W) from a file, which must be height x width: a clear error
    that names both sizes otherwise."""
    frames = read_image(path) if kind == "image" else read_video(path)
    if tuple(frames.shape[2:]) != (height, width):
        raise ValueError(f"{path} is {frames.shape[2]}x{frames.shape[3]} but the output is {height}x{width}; pass "
                         f"--size {frames.shape[2]}x{frames.shape[3]} to match it, or resize the {kind}")
    return frames


COMMAND_NAMES = {"num": "--num", "steps": "--steps", "guidance": "--cfg", "guidance_min_sigma": "--cfg-min-sigma",
                 "frames": "--frames", "overwrite": "--overwrite"}  # the pipeline's checks, in the command's words


def run_sample(checkpoint: str, prompts: Sequence[str], sampler: str = "heun", steps: int = 30, cfg: float = 4.0,
               num: int = 4, seed: int = 0, out: str = "samples", cfg_min_sigma: Optional[float] = None,
               prompting: Optional[Prompting] = None, overwrite: bool = False, device: str = "cpu") -> dict:
    """`python -m minisora sample`: `num` videos per prompt from a model.pt (or a saved folder), prompted through
    the pipeline as `prompting` says (length, size, given frames, a video to extend or edit), written as OUT/NN.mp4
    (at the model's size, to give back to --extend or --edit) and NN.gif (enlarged), or NN.png for one frame, with
    one tiled OUT/samples.gif, and scored against the model's world where the prompt names what the world can show.
    Guidance applies above `cfg_min_sigma` (None: the model's own `guidance_min_sigma`). Files of an earlier run in
    OUT are replaced only with `overwrite`: otherwise they are an error before any work."""
    from .pipeline import TinySora, check_samples_folder, check_sampling
    from .scoring import describe_scores

    prompting = prompting or Prompting()
    check_sampling(num, steps, cfg, cfg_min_sigma, names=COMMAND_NAMES)
    prompting.check()
    check_samples_folder(out, len(prompts) * num, overwrite, names=COMMAND_NAMES)
    sora = TinySora.from_pretrained(checkpoint, device=device)
    _, window, trained_height, trained_width = sora.data_shape
    height, width = parse_size(prompting.size) if prompting.size else (trained_height, trained_width)
    common = dict(num=num, steps=steps, guidance=cfg, sampler=sampler, seed=seed, guidance_min_sigma=cfg_min_sigma)

    def given(path: Optional[str], kind: str) -> Optional[torch.Tensor]:
        """The file's frames, checked to be the output's size (and the error in the flags' words), or None."""
        return read_sized(path, kind, height, width) if path else None

    if prompting.extend or prompting.extend_backward:
        path = prompting.extend or prompting.extend_backward
        given(path, "video")  # read again by the pipeline, which names the file in its errors
        videos = sora.extend(path, prompts, backward=not prompting.extend, frames=prompting.frames, **common)
    elif prompting.edit:
        given(prompting.edit, "video")
        videos = sora.edit(prompting.edit, prompts, strength=prompting.strength, **common)
    elif prompting.loop:
        videos = sora.loop(prompts, first=given(prompting.first_frame, "image"), frames=prompting.frames, **common)
    elif prompting.last_frame:
        videos = sora.interpolate(given(prompting.first_frame, "image"), given(prompting.last_frame, "image"),
                                  prompts, frames=prompting.frames, **common)
    elif prompting.first_frame:
        videos = sora.image_to_video(given(prompting.first_frame, "image"), prompts, frames=prompting.frames, **common)
    else:
        videos = sora.text_to_video(prompts, frames=prompting.frames,
                                    size=(height, width) if prompting.size else None, **common)
    folder = videos.save(out, overwrite=True)  # an earlier run's samples were refused above
    count, frames = videos.tensor.shape[0], videos.tensor.shape[2]
    kind = "images" if frames == 1 else "videos"
    print(f"wrote {count} {kind} of {frames} frames of {videos.tensor.shape[3]}x{videos.tensor.shape[4]} to {folder} "
          f"({'NN.png' if kind == 'images' else 'NN.mp4, NN.gif'}; samples.gif tiles them, a row per prompt)")
    try:
        scores = videos.scores()
    except ValueError as reason:
        print(f"not scored: {reason}")
        return {}
    print(f"scored against the {sora.config.dataset} world: {describe_scores(scores, sora.config.dataset)}")
    return scores
