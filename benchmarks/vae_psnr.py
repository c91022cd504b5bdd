"""How well does the causal video VAE reconstruct after a few CPU minutes, and what does compression cost? Trains
each setting for a fixed time budget on moving shapes and prints held-out PSNR at a quarter, half and all of the
budget, with the compression, as a markdown table (`benchmarks/RESULTS.md` holds the recorded one).

    python benchmarks/vae_psnr.py                          # every case, 10 minutes each
    python benchmarks/vae_psnr.py --case 4x4x4_z8 --minutes 2

The number of steps that fills the budget is estimated from a few timed steps first, so the times are close to,
not exactly, the budget; the table reports the times measured.
"""
import argparse
import tempfile
import time
from dataclasses import replace

import torch

from minisora.models.vae import VideoVAE, compression_ratio, vae_loss
from minisora.train.vae import VAEConfig, evaluate_vae, held_out_clips, model_config, train_vae
from tiny_datasets.videos import video_dataset

BASE = VAEConfig(held_out=64, checkpoint_every=0)
CASES = {
    "4x4x4_z8": BASE,
    "4x4x4_z4": replace(BASE, latent_channels=4),
    "4x4x4_z8_l1": replace(BASE, reconstruction="l1"),
    "4x4x2_z8": replace(BASE, temporal_downsample=2),
    "8x8x4_z16": replace(BASE, spatial_downsample=8, latent_channels=16),
}


def seconds_per_step(config: VAEConfig, trials: int = 6) -> float:
    """Time a few training steps (data rendering included) after two warm-up steps."""
    torch.manual_seed(config.seed)
    vae = VideoVAE(model_config(config))
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.learning_rate)
    dataset = video_dataset(config.dataset, num_items=1000, image_size=config.image_size, num_frames=config.num_frames)
    times = []
    for step in range(trials + 2):
        start = time.perf_counter()
        videos = torch.stack([dataset[(step * config.batch_size + i) % 1000]["video"] for i in range(config.batch_size)])
        loss, _ = vae_loss(vae, videos, config.kl_weight, config.reconstruction)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return sorted(times[2:])[len(times[2:]) // 2]


def run_case(name: str, config: VAEConfig, minutes: float) -> dict:
    steps = max(8, int(minutes * 60 / seconds_per_step(config)) // 4 * 4)
    held_out = held_out_clips(config)
    history = []
    start = time.time()

    def on_save(step, ema):
        nonlocal start
        paused = time.time()
        history.append((step, paused - start, evaluate_vae(ema, held_out)["psnr"]))
        start += time.time() - paused  # evaluation time is not training time

    with tempfile.TemporaryDirectory() as folder:
        config = replace(config, steps=steps, checkpoint_every=steps // 4, out_dir=folder)
        vae, _ = train_vae(config, progress=False, held_out=held_out, on_save=on_save)
    final = evaluate_vae(vae, held_out)
    return {"case": name, "steps": steps, "history": history, "final": final, "scale": vae.latent_scale.item(),
            "ratio": compression_ratio(vae.config), "latent": vae.latent_shape(config.num_frames, config.image_size,
                                                                               config.image_size)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=sorted(CASES), action="append", help="run only these cases")
    parser.add_argument("--minutes", type=float, default=10.0, help="training time per case")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; moving shapes, {BASE.num_frames} frames of "
          f"{BASE.image_size}x{BASE.image_size}, {BASE.held_out} held-out clips; a {args.minutes:g}-minute budget per "
          f"case\n")
    print("| case | latent (z, t, h, w) | values per latent value | steps | PSNR at 1/4 · 1/2 · all of the time "
          "| first frame | latent scale |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in args.case or CASES:
        result = run_case(name, CASES[name], args.minutes)
        points = " · ".join(f"{psnr:.1f} dB ({seconds / 60:.1f} min)" for _, seconds, psnr in result["history"])
        print(f"| {name} | {tuple(result['latent'])} | {result['ratio']:.0f} | {result['steps']} | {points} | "
              f"{result['final']['psnr_first_frame']:.1f} dB | {result['scale']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
