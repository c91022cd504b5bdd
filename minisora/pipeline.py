"""The one public door for a trained text-to-video model, as diffusers' pipelines are for theirs:

    from minisora.pipeline import TinySora

    sora = TinySora.from_pretrained("runs/sora/model.pt")           # or a folder written by save_pretrained
    videos = sora.text_to_video("a large red square moving right slowly", num=4)
    videos.save("samples/")                                         # NN.mp4 and NN.gif (NN.png for images)
    sora.image_to_video(videos.tensor[0, :, :1], "a large red square moving right slowly")
    sora.save_pretrained("shared/tiny-sora")                        # model.safetensors, config.json, README.md
    sora.push_to_hub("you/tiny-sora")                               # with the hub extra; from_pretrained reads it

Every task of `python -m minisora sample` is a method with its names and defaults: text_to_video, text_to_image,
image_to_video, extend (forward or backward), interpolate, loop and edit (SDEdit), each taking `num` (videos per
prompt), `steps`, `guidance`, `sampler`, `seed`, and `frames` and `size` where they apply. Videos are tensors
(3, T, H, W) in [-1, 1] or video files; images are (3, H, W) or (3, 1, H, W) tensors, PIL images or image files.
Every method returns `Videos`: `.tensor` (N, 3, T, H, W), `.captions`, `.save(folder)`, `.scores()` against the
model's world, and inline display in a notebook.

Loading and saving the model's files lives beside it, in trained_model.py; neither imports the trainer, so that
sampling, scoring and the demo need nothing from it.
"""
import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import torch

from . import hub
from .config import check_device, resolve_device
from .data.video_io import read_image, read_video, tile_videos, write_frame_grid, write_gif, write_image, write_video
from .diffusion.conditioning import gives_frames, parse_task_mix
from .generate import edit_sigma, sample_latents, sample_long, sample_loop
from .models.patches import check_patchable
from .models.text import CaptionTokenizer, split_words
from .models.vae import VideoVAE
from .trained_model import decode, load_folder, load_model, model_card, save_folder
from .video_config import VideoConfig


# ---- checks shared with the sample command (which names the settings by its flags) ----

API_NAMES = {"num": "num", "steps": "steps", "guidance": "guidance", "guidance_min_sigma": "guidance_min_sigma",
             "frames": "frames", "overwrite": "overwrite=True"}


def check_sampling(num: int, steps: int, guidance: float, guidance_min_sigma: Optional[float],
                   frames: Optional[int] = None, names: dict = API_NAMES) -> None:
    """Clear errors for settings no task can use, each named as the caller knows it (`names`: the pipeline's
    arguments, or the command's flags)."""
    if num < 1 or steps < 1:
        raise ValueError(f"{names['num']} and {names['steps']} must be at least 1, got {names['num']} {num} and "
                         f"{names['steps']} {steps}")
    if not math.isfinite(guidance) or guidance < 0:
        raise ValueError(f"{names['guidance']} must be a finite number >= 0 (1 is no guidance, 4 a usual choice), got "
                         f"{guidance}")
    if guidance_min_sigma is not None and guidance_min_sigma < 0:
        raise ValueError(f"{names['guidance_min_sigma']} is a noise level, >= 0; got {guidance_min_sigma}")
    if frames is not None and frames < 1:
        raise ValueError(f"{names['frames']} must be at least 1 (1 makes images), got {frames}")


def check_samples_folder(folder, count: int, overwrite: bool, names: dict = API_NAMES) -> None:
    """Samples of an earlier run in `folder` (NN.png/mp4/gif, samples.*, captions.txt) are replaced only when asked:
    otherwise an error, before any work."""
    if overwrite:
        return
    written = [f"{index:02d}.{kind}" for index in range(count) for kind in ("png", "mp4", "gif")]
    found = [name for name in written + ["samples.gif", "samples.mp4", "samples.png", "captions.txt"]
             if (Path(folder) / name).exists()]
    if found:
        raise ValueError(f"{folder} already holds samples ({', '.join(found[:4])}{', ...' if len(found) > 4 else ''})"
                         f"; pass {names['overwrite']} to replace them, or another folder")


# ---- what a pipeline returns ----

def write_samples(videos: torch.Tensor, out: Path, name: str = "samples", columns: int = 8) -> None:
    """A batch of videos as NAME.gif and NAME.mp4 (tiled, `columns` across) and NAME.png (a row per video, up to 8)."""
    tiled = tile_videos(videos, columns=min(columns, len(videos)), gap=2)
    write_gif(out / f"{name}.gif", tiled, scale=2)
    write_video(out / f"{name}.mp4", tiled.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))
    write_frame_grid(out / f"{name}.png", videos[:8])


@dataclass
class Videos:
    """What a TinySora task returns: N videos (or images: T = 1) and the caption each was made for."""
    tensor: torch.Tensor  # (N, 3, T, H, W) in [-1, 1]
    captions: List[str]  # N captions, each prompt repeated `num` times
    dataset: str  # the world the model learned, which scores() reads against
    per_prompt: int = 1  # videos per prompt (the tiled samples.gif has a row per prompt)

    def save(self, folder, overwrite: bool = False) -> Path:
        """NN.mp4 (at the model's size, to give back to extend or edit) and NN.gif (enlarged), or NN.png for one
        frame; samples.gif (.mp4, .png) tiling them, a row per prompt; captions.txt. Files already in the folder are
        an error unless `overwrite`."""
        folder = Path(folder)
        check_samples_folder(folder, len(self.tensor), overwrite)
        folder.mkdir(parents=True, exist_ok=True)
        for index, video in enumerate(self.tensor):
            if video.shape[1] == 1:
                write_image(folder / f"{index:02d}.png", video)
            else:
                write_video(folder / f"{index:02d}.mp4", video)
                write_gif(folder / f"{index:02d}.gif", video, scale=4)
        write_samples(self.tensor, folder, columns=self.per_prompt)
        (folder / "captions.txt").write_text("\n".join(self.captions) + "\n")
        return folder

    def scores(self) -> dict:
        """The videos against the world's truth (scoring.py): adherence to each caption and, for videos, motion and
        permanence. A caption that names nothing the world shows is a ValueError."""
        from .scoring import score_images, score_videos

        scorer = score_images if self.tensor.shape[2] == 1 else score_videos
        return scorer(self.tensor, self.captions, self.dataset)

    def _repr_html_(self) -> str:
        from .data.video_io import show_video

        return show_video(self.tensor, captions=self.captions)._repr_html_()


# ---- the pipeline ----

ImageLike = Union[torch.Tensor, str, Path, object]  # object: a PIL image
VideoLike = Union[torch.Tensor, str, Path]


class TinySora:
    """A trained text-to-video model and every way of prompting it (see the module's docstring)."""

    def __init__(self, config: VideoConfig, tokenizer: CaptionTokenizer, data_shape: Sequence[int],
                 denoiser: torch.nn.Module, vae: Optional[VideoVAE] = None, device: str = "cpu"):
        self.config, self.tokenizer, self.data_shape = config, tokenizer, tuple(data_shape)
        self.device = device
        self.denoiser = denoiser.to(device).eval()
        self.vae = None if vae is None else vae.to(device).eval()

    @classmethod
    def from_pretrained(cls, path, device: str = "auto", revision: Optional[str] = None,
                        token: Optional[str] = None) -> "TinySora":
        """A model from a run's model.pt, a folder written by save_pretrained, or (with the `hub` extra) a Hugging Face
        Hub repo id "owner/name" at `revision`, on `device` ("auto": a CUDA GPU, else Apple's MPS, else the CPU)."""
        device = check_device(resolve_device(device))
        path = Path(path)
        if not path.exists() and hub.looks_like_repo_id(path):
            path = hub.download(str(path), revision, token)
        loaded = load_folder(path) if path.is_dir() else load_model(path)
        return cls(*loaded, device=device)

    def save_pretrained(self, folder, scores: Optional[dict] = None) -> Path:
        """model.safetensors, config.json and README.md (a model card: the world, the command, the scores in
        `scores` (a run's metrics.json, when given), the limits) in `folder`, for from_pretrained or the Hub."""
        return save_folder(folder, self.config, self.tokenizer, self.data_shape, self.denoiser, self.vae,
                           model_card(self.config, self.data_shape, scores))

    def push_to_hub(self, repo_id: str, scores: Optional[dict] = None, private: Optional[bool] = None,
                    token: Optional[str] = None, message: str = "Upload a minisora model") -> str:
        """The folder of save_pretrained as one commit to Hugging Face Hub repo `repo_id` (the `hub` extra; made if
        it does not exist); the commit's address. from_pretrained(repo_id) reads it back."""
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder, scores)
            return hub.upload(folder, repo_id, private, token, message)

    # -- the tasks --

    def text_to_video(self, prompt: Union[str, Sequence[str]], frames: Optional[int] = None,
                      size: Optional[Tuple[int, int]] = None, num: int = 1, steps: int = 30, guidance: float = 4.0,
                      sampler: str = "heun", seed: int = 0, guidance_min_sigma: Optional[float] = None) -> Videos:
        """`num` videos per prompt of `frames` frames (the model's length by default; longer ones are made chunk by
        chunk) at `size` (height, width; the model's by default)."""
        job = self._job(prompt, num, steps, guidance, sampler, frames, size, guidance_min_sigma)
        return job.finish(job.long(frames or job.window, seed + 1))

    def text_to_image(self, prompt: Union[str, Sequence[str]], size: Optional[Tuple[int, int]] = None, num: int = 1,
                      steps: int = 30, guidance: float = 4.0, sampler: str = "heun", seed: int = 0,
                      guidance_min_sigma: Optional[float] = None) -> Videos:
        """`num` images per prompt (one-frame videos, (N, 3, 1, H, W))."""
        return self.text_to_video(prompt, 1, size, num, steps, guidance, sampler, seed, guidance_min_sigma)

    def image_to_video(self, image: ImageLike, prompt: Union[str, Sequence[str]], frames: Optional[int] = None,
                       num: int = 1, steps: int = 30, guidance: float = 4.0, sampler: str = "heun", seed: int = 0,
                       guidance_min_sigma: Optional[float] = None) -> Videos:
        """Videos that start with `image` (its size is the output's) and go on as the prompt says."""
        first = as_image(image)
        job = self._job(prompt, num, steps, guidance, sampler, frames, tuple(first.shape[2:]), guidance_min_sigma,
                        gives=True)
        total = frames or job.window
        given, mask = job.empty(total)
        given[:, :, 0], mask[:, 0] = first[:, 0], True
        return job.finish(job.long(total, seed + 1, given, mask))

    def interpolate(self, first: Optional[ImageLike], last: Optional[ImageLike], prompt: Union[str, Sequence[str]],
                    frames: Optional[int] = None, num: int = 1, steps: int = 30, guidance: float = 4.0,
                    sampler: str = "heun", seed: int = 0, guidance_min_sigma: Optional[float] = None) -> Videos:
        """Videos from `first` to `last` (of one size, the output's), in one window of the model's length; with
        `first` None, videos that end on `last`."""
        ends = [None if end is None else as_image(end) for end in (first, last)]
        sizes = {tuple(end.shape[2:]) for end in ends if end is not None}
        if ends[1] is None or len(sizes) != 1:
            raise ValueError(f"give the last frame (and the first, if any) at one size; got sizes {sorted(sizes)}")
        job = self._job(prompt, num, steps, guidance, sampler, frames, sizes.pop(), guidance_min_sigma, gives=True)
        total = frames or job.window
        if total > job.window:
            raise ValueError(f"clips that end on a given frame are up to the model's {job.window} frames (its window "
                             f"holds both ends); ask for {job.window} frames or fewer")
        given, mask = job.empty(total)
        for index, end in zip((0, -1), ends):
            if end is not None:
                given[:, :, index], mask[:, index] = end[:, 0], True
        return job.finish(job.long(total, seed + 1, given, mask))

    def loop(self, prompt: Union[str, Sequence[str]], first: Optional[ImageLike] = None, frames: Optional[int] = None,
             num: int = 1, steps: int = 30, guidance: float = 4.0, sampler: str = "heun", seed: int = 0,
             guidance_min_sigma: Optional[float] = None) -> Videos:
        """Seamless loops: the last frame leads back into the first (`first`, or one drawn for the prompt)."""
        start = None if first is None else as_image(first)
        job = self._job(prompt, num, steps, guidance, sampler, frames,
                        None if start is None else tuple(start.shape[2:]), guidance_min_sigma, gives=True)
        total = frames or job.window - 1
        if total + 1 > job.window:
            raise ValueError(f"loops make clips of up to {job.window - 1} frames (the model's window holds the first "
                             f"frame again at the end); ask for {job.window - 1} frames or fewer")
        return job.finish(sample_loop(self.denoiser, job.ids, job.shape(total), sampler, steps, guidance, seed,
                                      job.min_sigma, None if start is None else start.expand(job.count, *start.shape)))

    def extend(self, video: VideoLike, prompt: Union[str, Sequence[str]], backward: bool = False,
               frames: Optional[int] = None, num: int = 1, steps: int = 30, guidance: float = 4.0,
               sampler: str = "heun", seed: int = 0, guidance_min_sigma: Optional[float] = None) -> Videos:
        """The clip and what follows it (or, `backward`, what leads into it): `frames` in all (the clip and half a
        window more by default), the new frames made from the half window of the clip next to them."""
        clip = as_video(video)
        job = self._job(prompt, num, steps, guidance, sampler, frames, tuple(clip.shape[2:]), guidance_min_sigma,
                        gives=True)
        context = job.context
        if clip.shape[1] < context:
            raise ValueError(f"{named(video)} has {clip.shape[1]} frames; this model continues from {context} (half "
                             f"its {job.window}-frame window): give a longer clip")
        total = frames or clip.shape[1] + job.window - context
        if total <= clip.shape[1]:
            raise ValueError(f"{total} frames leave nothing to make after the clip's {clip.shape[1]} frames; ask for "
                             f"more")
        new = total - clip.shape[1]
        # only the `context` frames next to the new ones are given, as in training
        anchor = clip[:, :context] if backward else clip[:, -context:]
        given, mask = job.empty(new + context)
        where = slice(new, new + context) if backward else slice(0, context)
        given[:, :, where], mask[:, where] = anchor, True
        made = job.long(new + context, seed, given, mask, backward=backward)
        clips = clip.expand(job.count, *clip.shape)
        videos = torch.cat([made[:, :, :new], clips] if backward else [clips, made[:, :, context:]], dim=2)
        return job.finish(videos)

    def edit(self, video: VideoLike, prompt: Union[str, Sequence[str]], strength: float, num: int = 1, steps: int = 30,
             guidance: float = 4.0, sampler: str = "heun", seed: int = 0,
             guidance_min_sigma: Optional[float] = None) -> Videos:
        """SDEdit (Meng et al. 2022): the clip noised part of the way (`strength` in (0, 1]: 0.3 keeps most of it,
        1 draws anew) and denoised under the prompt."""
        clip = as_video(video)
        edit_sigma(strength)
        job = self._job(prompt, num, steps, guidance, sampler, clip.shape[1], tuple(clip.shape[2:]),
                        guidance_min_sigma, gives=True)
        if clip.shape[1] > job.window:
            raise ValueError(f"{named(video)} has {clip.shape[1]} frames; an edit redraws clips of up to the model's "
                             f"{job.window} frames: cut it shorter")
        return job.finish(sample_latents(self.denoiser, job.ids, job.shape(clip.shape[1]), sampler, steps, guidance,
                                         seed, job.min_sigma, start=clip.expand(job.count, *clip.shape),
                                         strength=strength))

    def _job(self, prompt, num, steps, guidance, sampler, frames, size, guidance_min_sigma, gives=False) -> "_Job":
        return _Job(self, prompt, num, steps, guidance, sampler, frames, size, guidance_min_sigma, gives)


class _Job:
    """One call of a task: its checked settings, captions and output size, and the sampling they share."""

    def __init__(self, model: TinySora, prompt, num, steps, guidance, sampler, frames, size, guidance_min_sigma,
                 gives):
        from .diffusion.samplers import check_sampler

        config = model.config
        prompts = [prompt] if isinstance(prompt, str) else list(prompt) if isinstance(prompt, (list, tuple)) else []
        if not prompts or not all(isinstance(text, str) for text in prompts):
            raise ValueError(f"prompt must be a caption or a list of captions, got {prompt!r}")
        check_sampling(num, steps, guidance, guidance_min_sigma, frames)
        check_sampler(sampler)
        channels, self.window, trained_height, trained_width = model.data_shape
        self.height, self.width = (trained_height, trained_width) if size is None else (int(size[0]), int(size[1]))
        if model.vae is not None and (frames is not None or size is not None or gives):
            raise ValueError("this model samples a VAE's latents; frames, size, given frames and edits work with "
                             "pixel-space models (space=pixel, as the tiny preset) for now")
        check_patchable((1, self.height, self.width), (1, config.patch_size, config.patch_size))
        unknown = sorted({word for text in prompts for word in split_words(text) if word not in model.tokenizer.ids})
        if unknown:
            print(f"warning: the model never saw the words {unknown}; they are read as <unknown>. Its words: "
                  f"{' '.join(model.tokenizer.words[3:])}")
        if gives and config.frame_marking == "none" and not gives_frames(parse_task_mix(config.task_mix)):
            print("warning: this model was trained on text alone; given frames are only held in place "
                  "(replacement), so what it draws around them may not follow on from them")
        self.model, self.channels, self.per_prompt = model, channels, num
        self.captions = [text for text in prompts for _ in range(num)]
        self.count = len(self.captions)
        self.ids = model.tokenizer.encode(self.captions, config.caption_length)
        self.steps, self.guidance, self.sampler = steps, guidance, sampler
        self.min_sigma = config.guidance_min_sigma if guidance_min_sigma is None else guidance_min_sigma
        self.context = max(1, self.window // 2)  # frames a chunk or an extension is given (the head task's)

    def shape(self, frames: int) -> Tuple[int, int, int, int]:
        return self.channels, frames, self.height, self.width

    def empty(self, frames: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """No frame given yet: the frames (N, 3, T, H, W) and the mask (N, T) of a task that gives some."""
        return (torch.zeros(self.count, 3, frames, self.height, self.width),
                torch.zeros(self.count, frames, dtype=torch.bool))

    def long(self, frames: int, seed: int, given=None, mask=None, backward: bool = False) -> torch.Tensor:
        """`frames` frames at the job's size, window by window, with the given frames kept."""
        return sample_long(self.model.denoiser, self.ids, self.shape(frames), self.window, self.sampler, self.steps,
                           self.guidance, seed, self.min_sigma, given, mask, backward)

    def finish(self, samples: torch.Tensor) -> Videos:
        return Videos(decode(self.model.vae, samples), self.captions, self.model.config.dataset, self.per_prompt)


# ---- inputs ----

def as_image(image: ImageLike) -> torch.Tensor:
    """An image as (3, 1, H, W) in [-1, 1], from a (3, H, W) or (3, 1, H, W) tensor, a PIL image or a file."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if not isinstance(image, torch.Tensor):
        import numpy as np

        try:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32)  # a PIL image: (H, W, 3) in 0..255
        except AttributeError:
            raise ValueError(f"an image must be a tensor (3, H, W) in [-1, 1], a PIL image or a file, got "
                             f"{type(image).__name__}") from None
        return torch.from_numpy(pixels).permute(2, 0, 1)[:, None] / 127.5 - 1
    if image.dim() == 3 and image.shape[0] == 3:
        image = image[:, None]
    if image.dim() != 4 or image.shape[:2] != (3, 1):
        raise ValueError(f"an image tensor must be (3, H, W) or (3, 1, H, W) in [-1, 1], got {tuple(image.shape)}")
    return image.detach().float().cpu()


def named(video: VideoLike) -> str:
    """How an error names a video: its file, or "the clip"."""
    return str(video) if isinstance(video, (str, Path)) else "the clip"


def as_video(video: VideoLike) -> torch.Tensor:
    """A video as (3, T, H, W) in [-1, 1], from a tensor or a video file."""
    if isinstance(video, (str, Path)):
        return read_video(video)
    if not isinstance(video, torch.Tensor) or video.dim() != 4 or video.shape[0] != 3:
        shape = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        raise ValueError(f"a video must be a tensor (3, T, H, W) in [-1, 1] or a video file, got {shape}")
    return video.detach().float().cpu()
