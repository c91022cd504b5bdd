"""What each lever of the tiny text-to-video preset buys: the preset and variations of it, each trained from scratch
and scored on the held-out captions (minisora.scoring), in one table.

    python benchmarks/text_to_video_levers.py [--only NAME ...] [--set key=value ...] [--out runs/levers]

`--set` applies to every variant (e.g. `--set device=cuda` on a GPU). On 2 CPU cores each variant of the preset's
size takes 10 to 14 minutes (4x the steps, 55), so pick with --only there; on a GPU the whole list takes minutes.
One run per variant and seed: differences of a few points are within the noise of 64 held-out samples.
"""
from pathlib import Path

from minisora.diffusion.flow import DATA_PREDICTION_MIN_SIGMA
from minisora.scoring import SCORES
from minisora.train.loop import read_metrics
from minisora.video_config import VIDEO_PRESETS
from video_variants import run_variants

TINY_STEPS = VIDEO_PRESETS["tiny"].steps
EARLIER = dict(learning_rate=1e-3, steps=1300)  # the preset's settings when the time shift was measured
VARIANTS = {  # name: changes to the tiny preset (rows of RESULTS.md were measured on the preset of their day)
    "tiny preset": {},
    "no clean-end expert, 1700 steps (the preset before the expert)": dict(expert_steps=0, steps=1700),
    "AdamW without rotary positions (the preset before 2026-11-25)": dict(optimizer="adamw", rotary=False),
    "Muon without rotary positions": dict(rotary=False),
    "no unshifted times, weight capped at sigma 0.05 (the Muon + RoPE preset before the clean end)": dict(
        unshifted_share=0.0, data_min_sigma=DATA_PREDICTION_MIN_SIGMA, expert_steps=0, steps=1700),
    "weight capped at sigma 0.3 without unshifted times": dict(unshifted_share=0.0, data_min_sigma=0.3),
    "20% unshifted times, weight capped at sigma 0.3": dict(data_min_sigma=0.3),
    "35% unshifted times, weight capped at sigma 0.3": dict(unshifted_share=0.35, data_min_sigma=0.3),
    "rotary positions with AdamW": dict(optimizer="adamw"),
    "no time shift": dict(time_shift=1.0, **EARLIER),
    "time shift 3": dict(time_shift=3.0, **EARLIER),
    "time shift 6": dict(**EARLIER),
    "time shift 12": dict(time_shift=12.0, **EARLIER),
    "uniform times": dict(time_distribution="uniform", **EARLIER),
    "learning rate 2e-3, 1300 steps": dict(learning_rate=2e-3, steps=1300),
    "learning rate 4e-3, 1300 steps": dict(learning_rate=4e-3, steps=1300),
    "learning rate 8e-3, 1300 steps": dict(learning_rate=8e-3, steps=1300),
    "8 frames, 1x8x8 patches": dict(num_frames=8, temporal_patch=1),
    "D96, 2800 steps (about the same time)": dict(hidden=96, steps=2800),
    "guidance at every noise level": dict(guidance_min_sigma=0.0),
    "30% unshifted times, weight capped at sigma 0.3": dict(unshifted_share=0.3, data_min_sigma=0.3),
    "bf16 autocast": dict(precision="bf16"),
    "velocity prediction": dict(prediction="velocity"),
    "EDM objective": dict(objective="edm", expert_steps=0),  # the expert trains on flow times
    "4x steps": dict(steps=4 * TINY_STEPS),
    "2x4x4 patches": dict(patch_size=4),
    "2x4x4 patches, 4x steps": dict(patch_size=4, steps=4 * TINY_STEPS),
    "2x4x4 patches, D192, 8 blocks, 4x steps": dict(patch_size=4, hidden=192, depth=8, heads=6,
                                                    steps=4 * TINY_STEPS),
    "2x4x4 patches, D64, Latte interleaved (about the same time)": dict(patch_size=4, hidden=64,
                                                                        layout="latte_interleaved", steps=1300),
    "Latte interleaved": dict(layout="latte_interleaved"),
    "W.A.L.T windows": dict(layout="walt_windows"),
}


def print_table(rows):
    print("| variant | steps (+ expert's) | train s | s / step | final loss | " + " | ".join(SCORES) + " |")
    print("| --- " * (5 + len(SCORES)) + "|")
    for name, config, metrics in rows:
        scores = metrics["trained"]
        all_steps = config.steps + config.expert_steps
        final_loss = read_metrics(Path(config.out_dir) / "metrics.jsonl")[-1]["loss"]
        print(f"| {name} | {config.steps} (+{config.expert_steps}) | {metrics['train_seconds']:.0f} | "
              f"{metrics['train_seconds'] / all_steps:.3f} | {final_loss:.4f} | "
              + " | ".join(f"{scores[score]:.0%}" for score in SCORES) + " |", flush=True)


if __name__ == "__main__":
    run_variants(__doc__, VARIANTS, "runs/levers", print_table)
