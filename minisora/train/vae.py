"""Train the causal video VAE on a tiny video dataset, on the CPU or a GPU: progress, resumable checkpoints, held-out PSNR, the
latent scale, and reconstructions written as videos (lesson 06).

`python -m minisora train --preset vae` runs `run_vae`; the trained model is saved as OUT_DIR/vae.pt and loaded
with `load_vae`.
"""
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from tiny_datasets.videos import video_dataset
from ..config import check_device, check_ranges, resolve_device
from ..data.video_io import psnr, tile_videos, write_frame_grid, write_gif, write_video
from ..models.vae import VideoVAE, VideoVAEConfig, compression_ratio, measure_latent_scale, vae_loss
from ..parallel import data_parallel
from ..parallel.data_parallel import DataParallel, check_parallel_mode, unsharded
from ..checkpoint import check_run_folder, save_checkpoint
from .loop import Checkpointing, train_loop

TRAINING_CLIPS = 10**7  # clips are rendered on the fly by index, so the training set is practically endless


# the range of every numeric field of VAEConfig
VAE_CONFIG_RANGES = {
    "image_size": "[16, inf)", "num_frames": "[1, inf)", "channels": "[1, inf)", "latent_channels": "[1, inf)",
    "spatial_downsample": "[1, inf)", "patch_size": "[1, inf)", "temporal_downsample": "[1, inf)",
    "blocks_per_level": "[1, inf)", "kl_weight": "[0, inf)", "steps": "[1, inf)", "batch_size": "[1, inf)",
    "learning_rate": "(0, inf)", "ema_decay": "[0, 1)", "held_out": "[1, inf)", "checkpoint_every": "[0, inf)",
    "seed": "[0, inf)",
}


@dataclass
class VAEConfig:
    dataset: str = "shapes"  # the tiny video dataset: "shapes", "digits" or "ball"
    image_size: int = 32  # frame side (a multiple of spatial_downsample)
    num_frames: int = 17  # frames per clip: 1 + temporal_downsample * k
    channels: int = 16  # width at full resolution (doubles per level, up to 4x)
    latent_channels: int = 8  # channels of the latent
    spatial_downsample: int = 4  # 4 or 8
    patch_size: int = 1  # pixels folded p x p into channels before the first convolution (cheaper full resolution)
    temporal_downsample: int = 4  # 1, 2 or 4
    blocks_per_level: int = 1  # residual blocks per resolution
    shortcuts: bool = False  # DC-AE's parameter-free shortcuts around each down/upsampling
    reconstruction: str = "l2"  # "l2" (optimises PSNR directly) or "l1" reconstruction error
    kl_weight: float = 1e-6  # weight of the KL per pixel value (Stable Diffusion's VAE: 1e-6)
    steps: int = 1250  # optimizer steps (about 10 minutes on 2 CPU cores: ~26 dB held-out PSNR, benchmarks/RESULTS.md)
    batch_size: int = 8  # clips per step
    learning_rate: float = 2e-3  # AdamW's peak
    ema_decay: float = 0.99  # EMA of weights, used for evaluation and saved as the model
    held_out: int = 64  # unseen clips for PSNR and the latent scale
    checkpoint_every: int = 250  # steps between resumable checkpoints (and reconstruction videos)
    resume: bool = False  # continue from OUT_DIR/checkpoint.pt
    seed: int = 0  # seeds data, initialisation and training
    device: str = "auto"  # "auto" (a CUDA GPU, else Apple's MPS, else the CPU), "cpu", "cuda" or "mps": where the VAE
    # trains and encodes (clips are rendered on the CPU)
    parallel: str = "ddp"  # how the processes of `torchrun --nproc_per_node=N -m minisora train` share the training:
    # "ddp" or "fsdp" (parallel/data_parallel.py); one process ignores it
    out_dir: str = "runs/vae"  # checkpoint.pt, vae.pt, reconstructions, loss.png, metrics.json
    overwrite: bool = False  # replace a finished (or start over an unfinished) run in out_dir

    def __post_init__(self):
        check_ranges(self, VAE_CONFIG_RANGES)
        check_device(self.device, present=False)
        self.device = resolve_device(self.device)  # "auto" becomes the device this machine has
        check_parallel_mode(self.parallel)


def model_config(config: VAEConfig) -> VideoVAEConfig:
    return VideoVAEConfig(latent_channels=config.latent_channels, channels=config.channels,
                          spatial_downsample=config.spatial_downsample, temporal_downsample=config.temporal_downsample,
                          patch_size=config.patch_size, blocks_per_level=config.blocks_per_level,
                          shortcuts=config.shortcuts)


def held_out_clips(config: VAEConfig) -> torch.Tensor:
    """Clips the training never sees (another seed): (N, 3, T, H, W)."""
    dataset = video_dataset(config.dataset, num_items=config.held_out, image_size=config.image_size,
                            num_frames=config.num_frames, seed=config.seed + 7919)
    return dataset.tensors()[0]


@torch.no_grad()
def reconstruct(vae: VideoVAE, videos: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """Decode the posterior means of `videos`: the VAE's deterministic reconstruction, clamped to [-1, 1]."""
    vae.eval()
    device = vae.latent_scale.device
    return torch.cat([vae.decode(vae.encode(videos[start:start + batch_size].to(device)).mean).clamp(-1, 1).cpu()
                      for start in range(0, len(videos), batch_size)])


def evaluate_vae(vae: VideoVAE, videos: torch.Tensor) -> dict:
    """Mean PSNR over clips of the reconstructions (all frames, and the first frame alone: it is coded on its own)."""
    reconstructions = reconstruct(vae, videos)
    return {"psnr": sum(psnr(v, r) for v, r in zip(videos, reconstructions)) / len(videos),
            "psnr_first_frame": sum(psnr(v[:, :1], r[:, :1]) for v, r in zip(videos, reconstructions)) / len(videos)}


def write_reconstructions(vae: VideoVAE, videos: torch.Tensor, out: Path, count: int = 6) -> None:
    """Originals above reconstructions as reconstructions.gif and .mp4, and a frame grid .png (rows: original,
    reconstruction, original, ...; a column per frame)."""
    originals = videos[:count]
    reconstructions = reconstruct(vae, originals)
    side_by_side = tile_videos(torch.cat([originals, reconstructions]), columns=len(originals), gap=2)
    write_gif(out / "reconstructions.gif", side_by_side, scale=3)
    write_video(out / "reconstructions.mp4", side_by_side.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))
    write_frame_grid(out / "reconstructions.png", torch.stack([originals[:3], reconstructions[:3]], 1).flatten(0, 1))


def train_vae(config: VAEConfig, progress: bool = True, held_out: Optional[torch.Tensor] = None,
              on_save: Optional[Callable[[int, VideoVAE], None]] = None, parallel: Optional[DataParallel] = None):
    """Train, on this process or as one of the processes of `parallel` (each rendering the whole batch and
    training on its rows); returns (the EMA VAE with its measured latent scale, per-step losses). At each
    checkpoint `on_save(step, ema VAE)` runs on process 0; by default it writes reconstruction videos when
    `progress` is on (not under FSDP, whose EMA is then sharded: the run's last ones are written)."""
    torch.manual_seed(config.seed)
    vae = VideoVAE(model_config(config)).to(config.device)
    trained, ema = (vae, None) if parallel is None else parallel.view(vae)
    shard = None if parallel is None else parallel.shard
    if held_out is None:
        held_out = held_out_clips(config)
    dataset = video_dataset(config.dataset, num_items=TRAINING_CLIPS, image_size=config.image_size,
                            num_frames=config.num_frames, seed=config.seed)

    def loss_of_batch(generator):
        index = torch.randint(TRAINING_CLIPS, (config.batch_size,), generator=generator).tolist()
        videos = torch.stack([dataset[i]["video"] for i in index]).to(config.device)
        return vae_loss(trained, videos, config.kl_weight, config.reconstruction, generator, shard)[0]

    out = Path(config.out_dir)

    def write_videos(step, ema):
        if progress and (parallel is None or parallel.mode != "fsdp"):
            write_reconstructions(ema, held_out, out)

    checkpointing = Checkpointing(out / "checkpoint.pt", asdict(config), config.checkpoint_every, config.resume,
                                  may_differ=("resume", "checkpoint_every", "out_dir", "overwrite", "device"),
                                  on_save=on_save or write_videos)
    ema, losses = train_loop(vae, loss_of_batch, config.steps, config.learning_rate, config.ema_decay, config.seed,
                             f"train the video VAE on {config.dataset}", progress, checkpointing, parallel=parallel,
                             ema=ema)
    ema = unsharded(ema, lambda: VideoVAE(model_config(config)).to(config.device))
    ema.latent_scale.fill_(measure_latent_scale(ema, held_out))
    return ema, losses


def save_vae(vae: VideoVAE, path) -> Path:
    """The trained model alone (config, weights, latent scale), for encoding and decoding elsewhere."""
    return save_checkpoint(path, {"config": asdict(vae.config), "model": vae.state_dict()})


def load_vae(path) -> VideoVAE:
    """A VAE saved by `save_vae` (or `python -m minisora train --preset vae`), in eval mode."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    vae = VideoVAE(VideoVAEConfig(**state["config"]))
    vae.load_state_dict(state["model"])
    return vae.eval()


def run_vae(config: VAEConfig, parallel: Optional[DataParallel] = None) -> dict:
    """Train, measure held-out PSNR and the latent scale, write vae.pt, reconstructions, loss.png, metrics.json.
    Launched by torchrun, every process trains, as one of the caller's `parallel` (a video run training its VAE) or
    joining torchrun's processes itself; process 0 alone measures and writes, the others return {}."""
    from ..plotting import draw_loss_curve
    from .loop import learning_rates

    check_device(config.device)
    check_run_folder(config.out_dir, config.overwrite, config.resume)
    joined = parallel is None
    if joined:  # a run of its own (a video run says where it trains)
        print(f"training on {config.device}")
    if joined:
        parallel = data_parallel.start(config.parallel, config.device)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    held_out = held_out_clips(config)
    start = time.time()
    vae, losses = train_vae(config, held_out=held_out, parallel=parallel)
    seconds = time.time() - start
    if joined:
        data_parallel.finish(parallel)
    if parallel is not None and not parallel.is_main:
        return {}
    scores = evaluate_vae(vae, held_out)
    save_vae(vae, out / "vae.pt")
    write_reconstructions(vae, held_out, out)
    draw_loss_curve(losses, out / "loss.png", learning_rates(config.learning_rate, config.steps)[-len(losses):])
    latent = vae.latent_shape(config.num_frames, config.image_size, config.image_size)
    metrics = {**scores, "latent_scale": vae.latent_scale.item(), "latent_shape": latent,
               "compression_ratio": compression_ratio(vae.config), "train_seconds": round(seconds, 1),
               "config": asdict(config)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"trained {config.steps} steps in {seconds:.0f} s; held-out PSNR {scores['psnr']:.2f} dB (first frame "
          f"{scores['psnr_first_frame']:.2f} dB); latents {latent} per clip, {metrics['compression_ratio']:.0f}x fewer "
          f"values; latent scale {metrics['latent_scale']:.3f}")
    print(f"wrote {out / 'vae.pt'}, reconstructions.gif/.mp4/.png (originals above reconstructions), loss.png and "
          f"metrics.json")
    return metrics
