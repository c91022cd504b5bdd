"""Time one DiT training step (forward + backward) of minisora's DiT against diffusers' DiTTransformer2DModel built
with the same configuration and random weights, in one run, and print the ratio.

    pip install diffusers    # only for this benchmark; minisora does not depend on it
    python benchmarks/dit_step_vs_diffusers.py [--repeats 10] [--threads 2]

The two models alternate step by step, so drifts of a noisy machine hit both alike; the table reports medians.
"""
import torch

from minisora.models.dit import DiT, DiTConfig, count_parameters
from peer_timing import median_seconds_in_turn, peer_arguments

# (name, DiTConfig fields, batch size)
CASES = [
    ("images preset: 16x16x3, D=96, 4 blocks, p=2", dict(input_size=16, in_channels=3, hidden=96, depth=4, heads=4,
                                                         patch_size=2), 64),
    ("DiT-S/4 on 32x32x4 latents", dict(input_size=32, in_channels=4, hidden=384, depth=12, heads=6, patch_size=4), 8),
    ("DiT-S/2 on 32x32x4 latents", dict(input_size=32, in_channels=4, hidden=384, depth=12, heads=6, patch_size=2), 4),
]


def build_pair(fields: dict):
    """minisora's DiT and diffusers' with the same shape: 1000 classes, learned sigma, adaLN-Zero, sdpa attention."""
    from diffusers import DiTTransformer2DModel

    ours = DiT(DiTConfig(num_classes=1000, learn_sigma=True, **fields))
    theirs = DiTTransformer2DModel(num_attention_heads=fields["heads"],
                                   attention_head_dim=fields["hidden"] // fields["heads"],
                                   in_channels=fields["in_channels"], out_channels=2 * fields["in_channels"],
                                   num_layers=fields["depth"], sample_size=fields["input_size"],
                                   patch_size=fields["patch_size"], num_embeds_ada_norm=1000)
    return ours, theirs


def training_step(model, run, x, timesteps, labels, target):
    """Forward, an MSE loss, backward; the gradients are cleared first."""
    model.zero_grad(set_to_none=True)
    out = run(model, x, timesteps, labels)
    torch.nn.functional.mse_loss(out, target).backward()


def run_ours(model, x, timesteps, labels):
    return model(x.unsqueeze(2), timesteps.float(), labels).squeeze(2)  # images as one-frame videos


def run_theirs(model, x, timesteps, labels):
    return model(x, timestep=timesteps, class_labels=labels).sample


def main():
    args = peer_arguments(__doc__)
    import diffusers

    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, {args.threads} CPU threads, "
          f"{args.repeats} timed steps each (median), forward + backward in float32\n")
    print("| case | batch | parameters (minisora / diffusers) | minisora s/step | diffusers s/step | diffusers / minisora |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, fields, batch in CASES:
        torch.manual_seed(0)
        ours, theirs = build_pair(fields)
        size, channels = fields["input_size"], fields["in_channels"]
        x = torch.randn(batch, channels, size, size)
        timesteps = torch.randint(0, 1000, (batch,))
        labels = torch.randint(0, 1000, (batch,))
        target = torch.randn(batch, 2 * channels, size, size)
        seconds = median_seconds_in_turn(
            {"ours": lambda: training_step(ours, run_ours, x, timesteps, labels, target),
             "theirs": lambda: training_step(theirs, run_theirs, x, timesteps, labels, target)}, args.repeats)
        print(f"| {name} | {batch} | {count_parameters(ours) / 1e6:.2f} M / {count_parameters(theirs) / 1e6:.2f} M | "
              f"{seconds['ours']:.3f} | {seconds['theirs']:.3f} | {seconds['theirs'] / seconds['ours']:.2f} |")


if __name__ == "__main__":
    main()
