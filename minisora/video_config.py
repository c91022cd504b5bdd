"""The text-to-video trainer's configuration: every field with its meaning and its range, and the named presets
(`python -m minisora train --preset tiny|sora|shapes64|ball64`). The trainer itself is train/video.py."""
from dataclasses import dataclass
from typing import Tuple

from .config import check_device, check_ranges, resolve_device
from .data.buckets import parse_buckets, unseen_buckets
from .diffusion.conditioning import parse_task_mix
from .diffusion.flow import Path as FlowPath
from .diffusion.samplers import check_sampler
from .models.video_dit import FRAME_MARKINGS
from .parallel.data_parallel import check_parallel_mode
from .parallel.sequence import SEQUENCE_METHODS
from .diffusion.objectives import check_objective

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
    device: str = "auto"  # "auto" (a CUDA GPU, else Apple's MPS, else the CPU), "cpu", "cuda" or "mps"
    parallel: str = "ddp"  # how the processes of `torchrun --nproc_per_node=N -m minisora train` share the training:
    # "ddp" (each holds the model, trains on its share of every batch; parallel/data_parallel.py) or "fsdp" (each
    # holds a shard of the weights, gradients and optimizer state); one process ignores it
    sequence_parallel: int = 1  # processes that share each clip's tokens (sequence parallelism, parallel/sequence.py):
    # 1, or a divisor of torchrun's processes (groups of that many share tokens, and the groups share the batch)
    sequence_method: str = "ulysses"  # attention over a shared sequence: "ulysses" or "ring" (temporal blocks: DSP)
    seed: int = 0  # seeds data, initialisation, training and sampling
    out_dir: str = "runs/tiny"  # model.pt, samples.gif/.mp4/.png, loss.png, metrics.jsonl, metrics.json
    overwrite: bool = False  # replace a finished (or start over an unfinished) run in out_dir

    def __post_init__(self):
        check_ranges(self, VIDEO_CONFIG_RANGES)
        check_device(self.device, present=False)
        self.device = resolve_device(self.device)  # "auto" becomes the device this machine has
        if self.space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {self.space!r}")
        check_objective(self.objective)
        check_sampler(self.sampler)
        if self.frame_marking not in FRAME_MARKINGS:
            raise ValueError(f"frame_marking must be one of {FRAME_MARKINGS}, got {self.frame_marking!r}")
        parse_task_mix(self.task_mix)
        check_parallel_mode(self.parallel)
        if self.sequence_method not in SEQUENCE_METHODS:
            raise ValueError(f"sequence_method must be one of {SEQUENCE_METHODS}, got {self.sequence_method!r}")
        unseen_buckets(self.unseen_sizes)
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
    "checkpoint_every": "[0, inf)", "seed": "[0, inf)", "sequence_parallel": "[1, inf)",
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
    # scored with DPM-Solver++(2M) at 20 steps (20 network evaluations, Heun's 20 take 39): the evaluation in 0.51-0.57
    # of the time, every score within its standard error on two seeds (benchmarks/RESULTS.md, "The speedrun's levers")
    "sora": VideoConfig(out_dir="runs/sora", frame_marking="mask_channel", task_mix=SORA_TASK_MIX,
                        buckets="16x32x32:32:4,1x32x32:256:1,8x32x48:42:1", unseen_sizes="12x40x40", steps=2400,
                        expert_steps=200, sampler="dpmpp_2m"),
    # for one 24 GB GPU: 64x64 clips in latent space, a DiT-S-sized model; on an H200 0.13 s a step in 6.5 GiB, about
    # 55 minutes in all (launch-bound: benchmarks/RESULTS.md, "the shapes64 preset")
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
