"""A GPU preset (shapes64, ball64) on a CUDA GPU within a time budget: what its training step costs, and what the
whole run (clips, VAE, latents, DiT, clean-end expert, samples, scores) reaches when its steps are scaled to fit.

    python benchmarks/gpu_preset_run.py --preset shapes64 --budget 300 --out runs/shapes64_gpu [--key=value ...]

On a machine without a GPU, `--device=cpu --precision=fp32 --attention_backend=sdpa` and small sizes make a dry
run of the script.

1. The preset's own training step (its batch, bf16 autocast, its attention backend, Muon, clipping, EMA) through
   `train_loop` on random latents of the VAE's latent shape: seconds a step (the difference of a long and a short
   run, so start-up and compilation drop out) and `torch.cuda.max_memory_allocated` beside the memory planner's
   plan of the same DiT (which leaves out the caption encoder, and counts AdamW's two moments where Muon keeps one).
2. The VAE trained (`--vae_steps`, where the preset's would take too long), then the DiT's and the expert's steps
   scaled down together, in the preset's ratio, to what the budget has left at the measured step time (the
   learning rate schedule is over the steps run, so a shorter run decays fully too); then `run_video` end to end.
"""
import argparse
import math
import time
from dataclasses import replace
from pathlib import Path

import torch

from minisora.config import apply_overrides
from minisora.memory import GIB, MemoryConfig, plan_memory
from minisora.models.text import PAD
from minisora.train.loop import train_loop
from minisora.train.vae import VAEConfig, model_config
from minisora.models.vae import VideoVAE
from minisora.trained_model import build_denoiser
from minisora.train.video import batch_loss, prepare_vae, run_video
from minisora.video_config import VIDEO_PRESETS, VideoConfig
from minisora.train.video_data import training_buckets

SECONDS_PER_CLIP_RENDERED = 0.006  # measured on a 2-core CPU: 500 clips of 17 x 64 x 64 in 2.45 s, plus margin
SECONDS_TO_SCORE = 60  # sampling, decoding and scoring twice (trained and untrained), writing videos


def latent_shape(config: VideoConfig):
    """(z, t, h, w) of the latents of the preset's clips, from the VAE it trains."""
    vae = VideoVAE(model_config(VAEConfig(image_size=config.image_size, num_frames=config.num_frames)))
    return vae.latent_shape(config.num_frames, config.image_size, config.image_size)


def planned_peak(config: VideoConfig, shape) -> float:
    """The memory planner's peak for the preset's DiT (its cross-attention counted, not the small caption encoder;
    AdamW's two moments, where Muon keeps one for the blocks' matrices)."""
    vae = VAEConfig(image_size=config.image_size, num_frames=config.num_frames)
    return plan_memory(MemoryConfig(
        frames=config.num_frames, height=config.image_size, width=config.image_size,
        spatial_downsample=vae.spatial_downsample, temporal_downsample=vae.temporal_downsample,
        latent_channels=shape[0], patch_size=config.patch_size, temporal_patch=config.temporal_patch,
        hidden=config.hidden, depth=config.depth, heads=config.heads, batch_size=config.batch_size,
        caption_tokens=config.caption_length, text_hidden=config.text_hidden,
        precision=config.precision, attention="flash" if config.attention_backend != "math" else "math",
        checkpoint_activations=config.checkpoint_activations, reserved_gib=0.0))["peak"]


def time_training_step(config: VideoConfig, shape, short: int = 10, long: int = 40):
    """(seconds a step, peak bytes allocated) of the preset's training step on random latents and captions."""
    bucket = training_buckets(config)[0]
    latents = torch.randn(4 * config.batch_size, *shape)
    captions = torch.randint(PAD + 1, 40, (len(latents), config.caption_length))

    def run(steps: int) -> float:
        torch.manual_seed(0)
        denoiser = build_denoiser(config, shape, 40).to(config.device)
        loss_of_batch = batch_loss(config, denoiser, [(bucket, latents, captions)],
                                   time_distribution=config.time_distribution, time_shift=config.time_shift,
                                   unshifted_share=config.unshifted_share)
        synchronize()
        start = time.perf_counter()
        train_loop(denoiser, loss_of_batch, steps, config.learning_rate, config.ema_decay, 0, progress=False,
                   precision=config.precision, warmup_steps=config.warmup_steps, clip_norm=config.clip_norm,
                   optimizer=config.optimizer)
        synchronize()
        return time.perf_counter() - start

    cuda = config.device.startswith("cuda")
    synchronize = torch.cuda.synchronize if cuda else (lambda: None)
    run(short)  # compiles the kernels
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    seconds = (run(long) - run(short)) / (long - short)
    return seconds, torch.cuda.max_memory_allocated() if cuda else math.nan


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="shapes64", choices=["shapes64", "ball64"])
    parser.add_argument("--budget", type=float, default=300.0, help="seconds for the whole run, timing included")
    parser.add_argument("--out", default="runs/gpu_preset", help="the run's folder (must not hold a run)")
    args, overrides = parser.parse_known_args()  # --key=value fields of the preset (vae_steps, num_clips, ...)
    began = time.perf_counter()
    config = apply_overrides(replace(VIDEO_PRESETS[args.preset], out_dir=args.out), overrides)
    shape = latent_shape(config)
    seconds, peak = time_training_step(config, shape)
    planned = planned_peak(config, shape)
    device_name = torch.cuda.get_device_name() if config.device.startswith("cuda") else "CPU (a dry run)"
    print(f"{device_name}, torch {torch.__version__}; {args.preset}: batch {config.batch_size} "
          f"of latents {tuple(shape)}, {config.precision}, {config.attention_backend} attention, {config.optimizer}")
    print("| training step s | peak allocated GiB | planned GiB | measured / planned |")
    print("| --- | --- | --- | --- |")
    print(f"| {seconds:.4f} | {peak / GIB:.2f} | {planned / GIB:.2f} | {peak / planned:.2f} |", flush=True)

    vae_started = time.perf_counter()
    prepare_vae(config)  # trained into OUT/vae, which run_video then reuses
    vae_seconds = time.perf_counter() - vae_started
    left = args.budget - (time.perf_counter() - began) - SECONDS_TO_SCORE \
        - SECONDS_PER_CLIP_RENDERED * (config.num_clips + config.held_out)
    preset = VIDEO_PRESETS[args.preset]
    share = min(1.0, max(left, 0.0) / (seconds * (preset.steps + preset.expert_steps)))
    steps, expert_steps = max(1, math.floor(share * preset.steps)), math.floor(share * preset.expert_steps)
    print(f"VAE: {config.vae_steps} steps in {vae_seconds:.0f} s; {left:.0f} s left for the DiT: {steps} steps "
          f"and {expert_steps} of the expert ({share:.0%} of the preset's {preset.steps} + {preset.expert_steps})",
          flush=True)
    config = replace(config, steps=steps, expert_steps=expert_steps,
                     checkpoint_every=max(steps, expert_steps))
    metrics = run_video(config)
    print(f"whole run {time.perf_counter() - began:.0f} s (budget {args.budget:.0f} s); metrics in "
          f"{Path(args.out) / 'metrics.json'}")
    return metrics


if __name__ == "__main__":
    main()
