"""Text-to-video end to end, the way Sora is described (Brooks et al. 2024): compress videos with a VAE, train a
diffusion transformer on spacetime patches of the latents conditioned on captions, sample latents for new captions,
decode them. Here on a tiny world, on a CPU, from nothing: `python -m minisora train --preset tiny` runs `run_video`.

  1. the data: clips of a tiny world (tiny_datasets/videos.py), rendered once; the held-out clips' captions are
     kept out of training altogether, so the samples show whether the model composes words it saw apart
  2. the VAE: reused from `vae_path` or OUT_DIR/vae/vae.pt, else trained there (`train.vae`); skipped in pixel space
  3. the latents: every training clip encoded once (posterior means times the latent scale), cached in OUT_DIR
  4. the video DiT (models/video_dit.py) with its caption encoder, trained by the shared loop with caption dropout;
     then a copy of it fine-tuned on the low noise levels alone, the clean-end expert (eDiff-I, diffusion/experts.py)
  5. samples for the held-out captions with classifier-free guidance, decoded, written as mp4, GIF and frame grid,
     and scored against the world's ground truth (scoring.py), beside an untrained model and the real clips

Everything the `sample` command needs is in OUT_DIR/model.pt: the configuration, the vocabulary, the EMA weights (the
model's and its expert's) and the VAE's weights (weights only: loading runs no code).
"""
import copy
import json
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch

from ..config import check_device, check_ranges
from ..evaluation import (GIVEN_FRAME_TASKS, describe_task_scores, draw_task_plots, score_long_videos,
                          score_loops, score_sdedit, score_tasks, score_text_at)
from ..generate import sample_latents
from ..data.video_io import tile_videos, write_frame_grid, write_gif, write_video
from ..data.buckets import parse_buckets, pick_bucket, shift_for
from ..diffusion.conditioning import draw_given_masks, frames_axis, parse_task_mix
from ..diffusion.experts import NoiseLevelExperts
from ..diffusion.flow import Path as FlowPath
from ..diffusion.guidance import drop_condition
from ..models.text import PAD, CaptionTokenizer, split_words
from ..models.vae import VideoVAE
from ..models.video_dit import FRAME_MARKINGS, VideoDiT, VideoDiTConfig
from ..randomness import randn
from ..scoring import WORLD_ATTRIBUTES, score_videos
from .checkpoint import check_run_folder, save_checkpoint
from .loop import Checkpointing, Logging, train_loop
from .video_data import (FolderData, TrainingSet, held_out_clips, held_out_loss, training_buckets,
                         training_clips)
from .objectives import NOISE_LABEL_SCALES, check_objective, objective_loss, wrap_network
from .vae import VAEConfig, load_vae, run_vae

SPACES = ("latent", "pixel")


@dataclass
class VideoConfig:
    dataset: str = "shapes"  # the tiny world: "shapes", "digits" or "ball"
    image_size: int = 32  # frame side
    num_frames: int = 16  # frames per clip (1 + 4k in latent space, for the VAE's 4x temporal compression)
    num_clips: int = 3000  # training clips, rendered once (none with a held-out caption)
    held_out: int = 64  # clips of another seed whose captions are never trained on: sampled and scored
    space: str = "pixel"  # "pixel" (the frames themselves) or "latent" (the VAE's; see benchmarks/RESULTS.md)
    vae_path: str = ""  # a trained vae.pt to reuse; "" reuses OUT_DIR/vae/vae.pt or trains one there
    vae_steps: int = 500  # steps of the VAE when it is trained here (its preset's other settings)
    patch_size: int = 8  # spatial patch side, in pixel (or latent) units
    temporal_patch: int = 2  # frames per patch
    hidden: int = 128  # token width
    depth: int = 6  # transformer blocks
    heads: int = 4  # attention heads
    layout: str = "spacetime"  # which tokens attend to which: spacetime, latte_interleaved, latte_late_fusion, walt_windows
    window: str = "1x2x2"  # walt_windows' local window t x h x w, in tokens
    rotary: bool = True  # 3D rotary position embedding in self-attention, besides the sin-cos positions
    frame_marking: str = "none"  # how the DiT marks given frames: "none" (put in place, unmarked), "mask_channel"
    # or "noise_level" (models/video_dit.py)
    task_mix: str = "text:1"  # the share of training samples of each task, task:weight pairs of
    # diffusion.conditioning.TASKS: which frames are given ("text:1", text-to-video alone, gives none)
    given_noise: float = 0.05  # given frames get Gaussian noise of this median level in training (log-normal, spread
    # 0.5, as CogVideoX's exp(N(-3, 0.5))), so that generated frames, never quite clean, can be given later
    text_hidden: int = 64  # width of the caption encoder
    text_depth: int = 2  # blocks of the caption encoder
    caption_length: int = 12  # caption ids per clip (<caption>, words, padding)
    objective: str = "flow"  # "flow" (SiT's linear path) or "edm"
    prediction: str = "data"  # flow's network output: "data" (x_0, scored on the velocity) or "velocity", "noise"
    time_distribution: str = "logit_normal"  # flow's training times: "uniform" or "logit_normal"
    time_shift: float = 6.0  # flow's time shift towards noise (Esser et al. 2024; 1 = none): where layout and motion
    # are decided (benchmarks/RESULTS.md: direction 14% unshifted, 88% at 6)
    unshifted_share: float = 0.2  # flow's share of training times left unshifted: the clean end, where shapes sharpen
    data_min_sigma: float = 0.2  # data prediction's loss weight ~ 1 / sigma_t^2, capped here (the two together:
    # adherence 67% -> 81%; with the cap at 0.3 77%, that cap alone 58%; benchmarks/RESULTS.md)
    steps: int = 1550  # optimizer steps of the main run (with the expert's, 10.5 to 13.5 minutes on 2 CPU cores)
    batch_size: int = 32  # clips per step
    data: str = ""  # a folder of your own videos with captions to train on instead of the tiny world
    # (train/video_data.py)
    buckets: str = ""  # sizes trained on, "FRAMESxHEIGHTxWIDTH:BATCH[:WEIGHT],..." (data/buckets.py; 1 frame: images);
    # "" is num_frames x image_size x image_size : batch_size alone. The first is the main size: held out, scored
    unseen_sizes: str = ""  # sizes never trained on, "FRAMESxHEIGHTxWIDTH,...", where text alone is also scored
    accumulation: int = 1  # batches whose gradients are summed into each step (batch_size x accumulation per step)
    optimizer: str = "muon"  # "muon" (Muon for the transformer blocks' matrices, AdamW for the rest) or "adamw"
    learning_rate: float = 3e-3  # the peak (with AdamW the tiny preset improves from 1e-3 to 4e-3, fails at 8e-3)
    warmup_steps: int = 50  # linear warmup of the learning rate
    clip_norm: float = 1.0  # gradient norm clipping (0 = off)
    ema_decay: float = 0.995  # EMA of weights, used for sampling
    expert_steps: int = 150  # steps of the clean-end expert, a copy of the trained model fine-tuned on times in
    # (0, expert_max_time] and sampled with below expert_sigma (eDiff-I's experts; 0 = none): in the time of 150 main
    # steps, adherence 84% -> 90% on average over four seeds (benchmarks/RESULTS.md)
    expert_max_time: float = 0.4  # the expert's training times are uniform in (0, this]
    expert_sigma: float = 0.2  # the noise level (EDM's sigma, t / (1 - t)) below which sampling uses the expert
    expert_learning_rate: float = 2e-3  # the expert's peak (the main run's optimizer, warmed up over an eighth of
    # the expert's steps)
    expert_ema_decay: float = 0.99  # EMA of the expert's weights (its run is short)
    caption_dropout: float = 0.1  # probability of training on the null caption (for classifier-free guidance)
    precision: str = "fp32"  # "fp32", "bf16" or "fp16" (mixed precision is for GPUs)
    attention_backend: str = "sdpa"  # "math", "sdpa" or "flash"
    checkpoint_activations: bool = False  # recompute each block in the backward pass (less memory)
    sampler: str = "heun"  # any name in minisora.diffusion.SAMPLERS
    sampling_steps: int = 20  # sampler steps (Karras noise levels)
    guidance: float = 4.0  # classifier-free guidance scale (1 = none)
    guidance_min_sigma: float = 0.5  # guidance only above this noise level (Kynkaanniemi et al. 2024): below it the
    # conditional model alone, which keeps objects whole (benchmarks/RESULTS.md: adherence 41% -> 55%)
    checkpoint_every: int = 200  # steps between resumable checkpoints
    resume: bool = False  # continue from OUT_DIR/checkpoint.pt
    device: str = "cpu"  # "cpu" or "cuda"
    seed: int = 0  # seeds data, initialisation, training and sampling
    out_dir: str = "runs/tiny"  # model.pt, samples.gif/.mp4/.png, loss.png, metrics.jsonl, metrics.json
    overwrite: bool = False  # replace a finished (or start over an unfinished) run in out_dir

    def __post_init__(self):
        check_ranges(self, VIDEO_CONFIG_RANGES)
        check_device(self.device, present=False)
        if self.space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {self.space!r}")
        check_objective(self.objective)
        if self.frame_marking not in FRAME_MARKINGS:
            raise ValueError(f"frame_marking must be one of {FRAME_MARKINGS}, got {self.frame_marking!r}")
        parse_task_mix(self.task_mix)
        if self.unseen_sizes:
            parse_buckets(",".join(f"{size}:1" for size in self.unseen_sizes.split(",")))
        if self.buckets:
            parse_buckets(self.buckets)
            if self.space != "pixel":
                raise ValueError(f"buckets={self.buckets!r} train several sizes in pixel space; a latent model trains "
                                 f"at one size (its VAE's), so leave buckets empty or set space=pixel")
        if self.expert_steps and self.objective != "flow":
            raise ValueError(f"the clean-end expert trains on flow times; with objective {self.objective!r} set "
                             f"expert_steps=0")
        switch_time = FlowPath("linear").time_from_edm_sigma(self.expert_sigma)
        if self.expert_steps and not switch_time < self.expert_max_time <= 1:
            raise ValueError(f"expert_sigma={self.expert_sigma} (time {switch_time:.3f}) must fall inside the expert's "
                             f"training times (0, expert_max_time={self.expert_max_time}]; raise expert_max_time (at "
                             f"most 1) or lower expert_sigma")


# the range of every numeric field of VideoConfig
VIDEO_CONFIG_RANGES = {
    "image_size": "[16, inf)", "num_frames": "[1, inf)", "num_clips": "[1, inf)", "held_out": "[1, inf)",
    "vae_steps": "[1, inf)", "patch_size": "[1, inf)", "temporal_patch": "[1, inf)", "hidden": "[1, inf)",
    "depth": "[1, inf)", "heads": "[1, inf)", "given_noise": "[0, inf)", "text_hidden": "[1, inf)",
    "text_depth": "[1, inf)", "caption_length": "[2, inf)", "time_shift": "(0, inf)", "unshifted_share": "[0, 1]",
    "data_min_sigma": "(0, inf)", "steps": "[1, inf)", "batch_size": "[1, inf)", "accumulation": "[1, inf)",
    "learning_rate": "(0, inf)", "warmup_steps": "[0, inf)", "clip_norm": "[0, inf)", "ema_decay": "[0, 1)",
    "expert_steps": "[0, inf)", "expert_max_time": "(0, 1]", "expert_sigma": "(0, inf)",
    "expert_learning_rate": "(0, inf)", "expert_ema_decay": "[0, 1)", "caption_dropout": "[0, 1]",
    "sampling_steps": "[1, inf)", "guidance": "[0, inf)", "guidance_min_sigma": "[0, inf)",
    "checkpoint_every": "[0, inf)", "seed": "[0, inf)",
}
GPU_PRESET = dict(image_size=64, num_frames=17, space="latent", patch_size=2, temporal_patch=1, num_clips=20000,
                  held_out=128, hidden=384, depth=12, heads=6, steps=20000, batch_size=64, learning_rate=3e-4,
                  precision="bf16", attention_backend="flash", vae_steps=5000, device="cuda", expert_steps=2000,
                  expert_learning_rate=3e-4,
                  time_shift=2.0)  # the tiny preset's 6 scaled by sqrt(values per clip), Esser et al.'s rule; untested
SORA_TASK_MIX = "text:6,first:2,last:1,first_last:1,head:1,tail:1,random:1"  # nearly half text alone; Open-Sora
# found too little masking never teaches conditioning (benchmarks/given_frames_designs.py measures mixes)
VIDEO_PRESETS = {
    "tiny": VideoConfig(),  # 2 CPU cores, 11 to 14 minutes: text to video alone
    # every task at every size: clips, images and wide clips in buckets that cost a step alike (4096 tokens each),
    # given frames marked by a mask channel; scored also at a size never trained on. 31 minutes at 0.57 s a step
    # (about 21 at 0.39 s); text to video 97%, every task scored in benchmarks/RESULTS.md ("Tiny Sora")
    "sora": VideoConfig(out_dir="runs/sora", frame_marking="mask_channel", task_mix=SORA_TASK_MIX,
                        buckets="16x32x32:32:4,1x32x32:256:1,8x32x48:42:1", unseen_sizes="12x40x40", steps=2400,
                        expert_steps=200),
    # for one 24 GB GPU (not yet run on one): 64x64 clips in latent space, a DiT-S-sized model
    "shapes64": VideoConfig(out_dir="runs/shapes64", **GPU_PRESET),
    "ball64": VideoConfig(dataset="ball", out_dir="runs/ball64", **GPU_PRESET),
}


def parse_window(text: str) -> Tuple[int, int, int]:
    try:
        window = tuple(int(side) for side in text.lower().split("x"))
    except ValueError:
        window = ()
    if len(window) != 3 or min(window) < 1:
        raise ValueError(f"window {text!r} must be three positive sides t x h x w, e.g. 1x2x2")
    return window


def prepare_vae(config: VideoConfig) -> Optional[VideoVAE]:
    """The VAE of a latent-space run: loaded from vae_path, or reused from OUT_DIR/vae, or trained there."""
    if config.space == "pixel":
        return None
    path = Path(config.vae_path) if config.vae_path else Path(config.out_dir) / "vae" / "vae.pt"
    if not path.is_file():
        if config.vae_path:
            raise FileNotFoundError(f"no VAE at vae_path={config.vae_path}; train one with `python -m minisora train "
                                    f"--preset vae`, or leave vae_path empty to train one here")
        run_vae(VAEConfig(dataset=config.dataset, image_size=config.image_size, num_frames=config.num_frames,
                          steps=config.vae_steps, checkpoint_every=config.vae_steps, seed=config.seed,
                          out_dir=str(path.parent)))
    vae = load_vae(path)
    if vae.config.in_channels != 3:
        raise ValueError(f"the VAE at {path} encodes {vae.config.in_channels} channels, not RGB video")
    return vae


@torch.no_grad()
def encode(vae: Optional[VideoVAE], videos: torch.Tensor, batch_size: int = 32, progress: bool = True
           ) -> torch.Tensor:
    """What the DiT learns: scaled latent means (N, z, t, h, w), or the videos themselves in pixel space."""
    from tqdm.auto import tqdm

    if vae is None:
        return videos
    return torch.cat([vae.to_latents(videos[start:start + batch_size])
                      for start in tqdm(range(0, len(videos), batch_size), desc="encode latents",
                                        disable=not progress)])


@torch.no_grad()
def decode(vae: Optional[VideoVAE], latents: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Videos (N, 3, T, H, W) in [-1, 1] from what the DiT samples."""
    if vae is None:
        return latents.clamp(-1, 1)
    return torch.cat([vae.from_latents(latents[start:start + batch_size]).clamp(-1, 1)
                      for start in range(0, len(latents), batch_size)])


def build_denoiser(config: VideoConfig, data_shape: Sequence[int], vocabulary_size: int) -> torch.nn.Module:
    """The video DiT for data (C, T, H, W), conditioned on captions, behind its objective's denoiser."""
    network = VideoDiT(VideoDiTConfig(
        in_channels=data_shape[0], patch_size=config.patch_size,
        temporal_patch=config.temporal_patch, hidden=config.hidden, depth=config.depth, heads=config.heads,
        layout=config.layout, window=parse_window(config.window), rotary=config.rotary,
        vocabulary_size=vocabulary_size, caption_length=config.caption_length, text_hidden=config.text_hidden,
        text_depth=config.text_depth, frame_marking=config.frame_marking,
        attention_backend=config.attention_backend, checkpoint_activations=config.checkpoint_activations,
        noise_label_scale=NOISE_LABEL_SCALES[config.objective]))
    return wrap_network(network, config.objective, config.prediction)


# fields a resumed run may change: they do not touch the weights trained so far
MAY_DIFFER_ON_RESUME = ("resume", "overwrite", "checkpoint_every", "out_dir", "sampler", "sampling_steps", "guidance",
                        "guidance_min_sigma", "expert_sigma")


def batch_loss(config: VideoConfig, denoiser: torch.nn.Module, sets: Sequence[TrainingSet], **times):
    """loss_of_batch(generator) for the loop: a bucket drawn by weight, a random batch of its clips and captions, a
    tenth of the captions dropped for the null one, each clip given the frames of a task drawn from `task_mix`
    (slightly noised, left out of the loss), the objective's loss at times drawn as `times` (objective_loss's time
    arguments) say, a time_shift among them scaled to the bucket's size (`buckets.shift_for`)."""
    device = torch.device(config.device)
    mix = parse_task_mix(config.task_mix)
    reference = sets[0][0]

    def loss_of_batch(generator):
        bucket, data, caption_ids = sets[pick_bucket([bucket for bucket, _, _ in sets], generator)]
        index = torch.randint(len(data), (bucket.batch_size,), generator=generator)
        ids = drop_condition(caption_ids[index], config.caption_dropout, PAD, generator)  # the null caption
        clips = data[index].to(device)
        frames = {}
        if set(mix) != {"text"} and clips.shape[2] > 1:
            given_mask = draw_given_masks(len(clips), clips.shape[2], mix, generator)  # (B, T)
            # sigma_given = given_noise * exp(0.5 n): a little noise, so that imperfect frames can be given later
            levels = config.given_noise * torch.exp(0.5 * torch.randn(len(clips), generator=generator))
            noisy = clips + levels.view(-1, 1, 1, 1, 1).to(device) * randn(clips.shape, generator, device)
            frames = dict(given=noisy, given_mask=given_mask.to(device),
                          loss_mask=frames_axis(~given_mask).to(device))
        shift = {"time_shift": shift_for(bucket, reference, times["time_shift"])} if "time_shift" in times else {}
        return objective_loss(denoiser, clips, config.objective, generator, data_min_sigma=config.data_min_sigma,
                              caption=ids.to(device), **frames, **{**times, **shift})
    return loss_of_batch


def train_video(config: VideoConfig, sets: Sequence[TrainingSet], vocabulary_size: int, progress: bool = True,
                on_save=None):
    """Train the video DiT on its training sets (a bucket, data (N, C, T, H, W) and caption ids (N, M) each);
    returns (ema denoiser, losses)."""
    torch.manual_seed(config.seed)
    denoiser = build_denoiser(config, sets[0][1].shape[1:], vocabulary_size).to(config.device)
    loss_of_batch = batch_loss(config, denoiser, sets, time_distribution=config.time_distribution,
                               time_shift=config.time_shift, unshifted_share=config.unshifted_share)
    out = Path(config.out_dir)
    checkpointing = Checkpointing(out / "checkpoint.pt", asdict(config), config.checkpoint_every, config.resume,
                                  may_differ=MAY_DIFFER_ON_RESUME, on_save=on_save)
    return train_loop(denoiser, loss_of_batch, config.steps, config.learning_rate, config.ema_decay, config.seed,
                      f"train the video DiT on {config.dataset}", progress, checkpointing, config.precision,
                      config.warmup_steps, config.accumulation, config.clip_norm,
                      logging=Logging(out / "metrics.jsonl"), optimizer=config.optimizer)


def train_expert(config: VideoConfig, denoiser: torch.nn.Module, sets: Sequence[TrainingSet],
                 progress: bool = True) -> NoiseLevelExperts:
    """The trained denoiser with a clean-end expert beside it (Balaji et al. 2022): a copy fine-tuned for
    `expert_steps` on times uniform in (0, expert_max_time], sampled with below noise level `expert_sigma`.
    The main run's times, shifted towards noise, leave the clean end few draws (4% below t = 0.3); there the
    triangles' tips and the squares' corners are drawn."""
    expert = copy.deepcopy(denoiser).to(config.device).train().requires_grad_(True)
    loss_of_batch = batch_loss(config, expert, sets, time_distribution="uniform",
                               max_time=config.expert_max_time)
    out = Path(config.out_dir)
    checkpointing = Checkpointing(out / "expert_checkpoint.pt", asdict(config), config.checkpoint_every,
                                  config.resume, may_differ=MAY_DIFFER_ON_RESUME)
    # warm up over an eighth of the run: the optimizer's momentum and moments start from zero on trained weights
    warmup = config.expert_steps // 8
    expert, _ = train_loop(expert, loss_of_batch, config.expert_steps, config.expert_learning_rate,
                           config.expert_ema_decay, config.seed + 1, "train the clean-end expert", progress,
                           checkpointing, config.precision, warmup, config.accumulation, config.clip_norm,
                           logging=Logging(out / "expert_metrics.jsonl"), optimizer=config.optimizer)
    return NoiseLevelExperts(denoiser, expert, config.expert_sigma)


def write_samples(videos: torch.Tensor, out: Path, name: str = "samples", columns: int = 8) -> None:
    """A batch of videos as NAME.gif and NAME.mp4 (tiled, `columns` across) and NAME.png (a row per video, up to 8)."""
    tiled = tile_videos(videos, columns=min(columns, len(videos)), gap=2)
    write_gif(out / f"{name}.gif", tiled, scale=2)
    write_video(out / f"{name}.mp4", tiled.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))
    write_frame_grid(out / f"{name}.png", videos[:8])


def save_model(path: Path, config: VideoConfig, tokenizer: CaptionTokenizer, data_shape: Sequence[int],
               denoiser: torch.nn.Module, vae: Optional[VideoVAE]) -> Path:
    """Everything `sample` needs, as tensors, numbers and strings (loadable with weights_only=True); `denoiser` is
    the trained one or NoiseLevelExperts of it and its clean-end expert."""
    experts = isinstance(denoiser, NoiseLevelExperts)
    return save_checkpoint(path, {
        "kind": "minisora text-to-video", "config": asdict(config), "words": tokenizer.words,
        "data_shape": list(data_shape), "model": (denoiser.high if experts else denoiser).state_dict(),
        "expert": denoiser.low.state_dict() if experts else None,
        "vae": None if vae is None else {"config": asdict(vae.config), "model": vae.state_dict()}})


def load_model(path) -> Tuple[VideoConfig, CaptionTokenizer, Tuple[int, ...], torch.nn.Module, Optional[VideoVAE]]:
    """(config, tokenizer, data shape, EMA denoiser, VAE or None) from a model.pt written by `save_model`; a file
    that is not one is a clear error."""
    from ..models.vae import VideoVAEConfig

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model at {path}; train one with `python -m minisora train --preset tiny`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several kinds for a damaged or foreign file
        raise ValueError(f"{path} is not a readable checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or state.get("kind") != "minisora text-to-video":
        found = sorted(state)[:8] if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path} is not a text-to-video model written by `train --preset tiny` (it holds {found}); "
                         f"pass OUT_DIR/model.pt of such a run")
    known = {field.name for field in fields(VideoConfig)}
    config = VideoConfig(**{key: value for key, value in state["config"].items() if key in known})
    tokenizer = CaptionTokenizer(state["words"][3:])
    data_shape = tuple(state["data_shape"])

    def with_weights(weights: dict) -> torch.nn.Module:
        denoiser = build_denoiser(config, data_shape, len(tokenizer))
        try:
            denoiser.load_state_dict(weights)
        except RuntimeError as error:
            raise ValueError(f"{path}: its weights do not fit the configuration it names ({str(error)[:300]})"
                             ) from None
        return denoiser

    denoiser = with_weights(state["model"])
    if state.get("expert") is not None:  # none with expert_steps=0, or in a model written before experts
        denoiser = NoiseLevelExperts(denoiser, with_weights(state["expert"]), config.expert_sigma)
    vae = None
    if state["vae"] is not None:
        vae = VideoVAE(VideoVAEConfig(**state["vae"]["config"]))
        vae.load_state_dict(state["vae"]["model"])
        vae.eval()
    return config, tokenizer, data_shape, denoiser.eval(), vae


def score_samples(denoiser, tokenizer, vae, captions, config: VideoConfig, data_shape) -> Tuple[dict, torch.Tensor]:
    """Guided samples for `captions`, decoded and scored against the world: (scores, videos)."""
    ids = tokenizer.encode(captions, config.caption_length)
    latents = sample_latents(denoiser, ids, data_shape, config.sampler, config.sampling_steps, config.guidance,
                             config.seed + 1, config.guidance_min_sigma)
    videos = decode(vae, latents)
    return score_videos(videos, captions, config.dataset), videos


def describe_scores(scores: dict, dataset: Optional[str] = None) -> str:
    """One line: adherence (with each attribute), motion consistency, permanence; with the `dataset`, also the
    attributes its world shows that no caption named, so went unscored."""
    attributes = ", ".join(f"{name} {scores[name]:.0%}" for name in ("colour", "shape", "direction") if name in scores)
    unscored = [name for name in WORLD_ATTRIBUTES.get(dataset, ()) if name not in scores]
    missing = f"; {' and '.join(unscored)} not scored (no prompt names one the world knows)" if unscored else ""
    return (f"adherence {scores['adherence']:.0%} ({attributes}{missing}), motion {scores['motion']:.0%}, "
            f"permanence {scores['permanence']:.0%}")


def prepare_data(config: VideoConfig, progress: bool = True):
    """What a run learns from and is scored on: (training sets, tokenizer, VAE or None, held-out clips (N, 3, T, H,
    W) or None, their captions, FolderData or None). From the tiny world, or from the folder `config.data`."""
    if config.data:
        folder = FolderData(config, progress)
        captions = folder.captions()
        longest = max(captions, key=lambda caption: len(split_words(caption)))
        if len(split_words(longest)) + 1 > config.caption_length:
            raise ValueError(f"the caption {longest!r} of {config.data} has {len(split_words(longest))} words; pass "
                             f"--caption_length={len(split_words(longest)) + 1} (or more) to fit every caption")
        tokenizer = CaptionTokenizer.from_captions(captions)
        held = [clip for clip in folder.held_out.get(folder.sizes[0], [])][:config.held_out]
        held_out_videos = torch.stack([video for video, _ in held]) if held else None
        return (folder.sets(tokenizer, config.caption_length), tokenizer, None, held_out_videos,
                [caption for _, caption in held], folder)
    held_out_videos, held_out_captions = held_out_clips(config)
    rendered = [(bucket, *training_clips(config, held_out_captions, progress, bucket))
                for bucket in training_buckets(config)]
    vae = prepare_vae(config)
    tokenizer = CaptionTokenizer.from_captions([caption for _, _, captions in rendered for caption in captions])
    sets = [(bucket, encode(vae, videos, progress=progress), tokenizer.encode(captions, config.caption_length))
            for bucket, videos, captions in rendered]
    return sets, tokenizer, vae, held_out_videos, held_out_captions, None


def run_video(config: VideoConfig, progress: bool = True) -> dict:
    """Data, VAE, latents, DiT, samples and scores; writes everything to out_dir and returns the metrics."""
    from ..plotting import draw_loss_curve

    check_device(config.device)
    check_run_folder(config.out_dir, config.overwrite, config.resume)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    sets, tokenizer, vae, held_out_videos, held_out_captions, folder = prepare_data(config, progress)
    vae_seconds = time.time() - start
    data_shape = tuple(sets[0][1].shape[1:])
    prepared = time.time()
    denoiser, losses = train_video(config, sets, len(tokenizer), progress)
    if config.expert_steps:
        denoiser = train_expert(config, denoiser, sets, progress)
    train_seconds = time.time() - prepared
    denoiser = denoiser.cpu()
    save_model(out / "model.pt", config, tokenizer, data_shape, denoiser, vae)
    torch.manual_seed(config.seed + 2)
    untrained_model = build_denoiser(config, data_shape, len(tokenizer))
    if folder is not None:
        return report_folder_run(config, folder, denoiser, untrained_model, tokenizer, held_out_videos,
                                 held_out_captions, data_shape, losses, train_seconds, start)
    scores, samples = score_samples(denoiser, tokenizer, vae, held_out_captions, config, data_shape)
    untrained, _ = score_samples(untrained_model, tokenizer, vae, held_out_captions, config, data_shape)
    reference = {"real clips": score_videos(held_out_videos, held_out_captions, config.dataset)}
    if vae is not None:
        reference["VAE reconstructions"] = score_videos(decode(vae, encode(vae, held_out_videos, progress=False)),
                                                        held_out_captions, config.dataset)
    tasks = {}
    if set(parse_task_mix(config.task_mix)) != {"text"} and config.space == "pixel":  # it was taught given frames
        tasks = {"trained": score_tasks(denoiser, tokenizer, config, data_shape),
                 "real clips": score_tasks(None, tokenizer, config, data_shape),
                 "loops": score_loops(denoiser, tokenizer, config, data_shape, count=min(32, config.held_out)),
                 "long videos": score_long_videos(denoiser, tokenizer, config, data_shape, frames=4 * data_shape[1],
                                                  count=min(16, config.held_out)),
                 "sdedit": score_sdedit(denoiser, tokenizer, config, data_shape, count=min(32, config.held_out))}
        draw_task_plots(tasks["long videos"], tasks["sdedit"], out)
    sizes = {}
    if config.space == "pixel":  # text alone at the other sizes trained on, and at those never trained on
        other_sizes = [(bucket, "trained") for bucket in training_buckets(config)[1:]]
        if config.unseen_sizes:
            other_sizes += [(bucket, "never trained on") for bucket in
                            parse_buckets(",".join(f"{size}:1" for size in config.unseen_sizes.split(",")))]
        sizes = {f"{bucket.describe()} ({kind})": score_text_at(denoiser, tokenizer, config, bucket.frames,
                                                                bucket.height, bucket.width)
                 for bucket, kind in other_sizes}
    write_samples(samples, out)
    (out / "captions.txt").write_text("\n".join(held_out_captions) + "\n")
    draw_loss_curve(losses, out / "loss.png")
    metrics = {"trained": scores, "untrained": untrained, **reference, "tasks": tasks, "sizes": sizes,
               "data_shape": list(data_shape),
               "parameters": sum(p.numel() for p in untrained_model.parameters()),  # of one network (an expert's same)
               "prepare_seconds": round(vae_seconds, 1),
               "train_seconds": round(train_seconds, 1), "total_seconds": round(time.time() - start, 1),
               "config": asdict(config)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    expert = f" and {config.expert_steps} of the clean-end expert" if config.expert_steps else ""
    print(f"trained {config.steps} steps{expert} in {train_seconds:.0f} s ({time.time() - start:.0f} s in all); "
          f"{len(held_out_captions)} samples for captions never trained on, scored against the world:")
    for name in ("trained", "untrained", *reference):
        row = metrics[name]
        print(f"  {name:<20} {describe_scores(row)}")
    for name, row in sizes.items():
        print(f"  text at {name}: " + (describe_scores(row) if "motion" in row else
                                       ", ".join(f"{key} {value:.0%}" for key, value in row.items())))
    for name in ("trained", "real clips") if tasks else ():
        print(f"given frames, {name}:")
        for task in GIVEN_FRAME_TASKS:
            print(f"  {describe_task_scores(task, tasks[name][task])}")
    if tasks:
        loops, long_videos = tasks["loops"], tasks["long videos"]
        print(f"loops: seam {loops['seam_px']:.1f} px against a step of {loops['step_px']:.1f} px, seamless "
              f"{loops['seamless']:.0%}")
        print(f"{long_videos['frames']} frames by chunks, track error per chunk: " + ", ".join(
            f"{chunk['track_error_px']:.1f}" for chunk in long_videos["chunks"]) + " px, identity kept: " + ", ".join(
            f"{chunk['identity']:.0%}" for chunk in long_videos["chunks"]) + " (long_videos.png)")
        print("SDEdit, strength: share edited / drift from the source: " + ", ".join(
            f"{point['strength']:g}: {point['changed']:.0%} / {point['track_error_px']:.1f} px"
            for point in tasks["sdedit"]) + " (sdedit.png)")
    print(f"wrote {out / 'samples.gif'} (.mp4, .png; captions in captions.txt), model.pt, loss.png, metrics.jsonl "
          f"and metrics.json")
    return metrics


def report_folder_run(config: VideoConfig, folder: FolderData, denoiser, untrained_model, tokenizer,
                      held_out_videos: Optional[torch.Tensor], held_out_captions: List[str], data_shape, losses,
                      train_seconds: float, start: float) -> dict:
    """A run on the user's folder: the loss on held-out clips (trained against untrained, at the same draws),
    samples for the held-out captions, and world scores when the folder came from a tiny world (it keeps the
    truth in captions.jsonl)."""
    from ..plotting import draw_loss_curve

    out = Path(config.out_dir)
    text_only = replace(config, task_mix="text:1", caption_dropout=0.0)
    held_sets = folder.held_out_sets(tokenizer, config.caption_length)
    held = {name: held_out_loss(batch_loss(text_only, model, held_sets, time_distribution="uniform"),
                                seed=config.seed + 3) if held_sets else None
            for name, model in (("trained", denoiser), ("untrained", untrained_model))}
    metrics = {"held_out_loss": held, "buckets": [asdict(bucket) for bucket in folder.buckets],
               "skipped_files": len(folder.skipped), "data_shape": list(data_shape),
               "train_seconds": round(train_seconds, 1), "total_seconds": round(time.time() - start, 1),
               "config": asdict(config)}
    if held_out_videos is not None:
        ids = tokenizer.encode(held_out_captions, config.caption_length)
        samples = sample_latents(denoiser, ids, data_shape, config.sampler, config.sampling_steps, config.guidance,
                                 config.seed + 1, config.guidance_min_sigma).clamp(-1, 1)
        write_samples(samples, out)
        (out / "captions.txt").write_text("\n".join(held_out_captions) + "\n")
        if (Path(config.data) / "captions.jsonl").is_file() and '"truth"' in (
                Path(config.data) / "captions.jsonl").read_text():  # written from a tiny world: it can be scored
            metrics["trained"] = score_videos(samples, held_out_captions, config.dataset)
            metrics["real clips"] = score_videos(held_out_videos, held_out_captions, config.dataset)
    draw_loss_curve(losses, out / "loss.png")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"trained {config.steps} steps on {config.data} in {train_seconds:.0f} s: {folder.describe()}")
    if held["trained"] is not None:
        print(f"  held-out loss {held['trained']:.4f} (untrained {held['untrained']:.4f})")
    for name in ("trained", "real clips"):
        if name in metrics:
            print(f"  {name:<20} {describe_scores(metrics[name], config.dataset)}")
    print(f"wrote model.pt, loss.png, metrics.json{' and samples' if held_out_videos is not None else ''} to {out}")
    return metrics
