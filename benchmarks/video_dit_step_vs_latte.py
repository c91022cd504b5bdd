"""Time one training step (forward + backward) of minisora's video DiT in Latte's interleaved layout against
diffusers' LatteTransformer3DModel built with the same shape and random weights, in one run; print the ratio and
each step's achieved FLOP/s against this machine's float32 matmul rate, measured in the same run.

    pip install diffusers    # only for this benchmark; minisora does not depend on it
    python benchmarks/video_dit_step_vs_latte.py [--repeats 10] [--threads 2]

Same shape: spatial patches p (Latte has no temporal patches, so minisora uses pt = 1), width D, the same number of
spatial and temporal blocks (Latte's num_layers of each; minisora's depth counts both), heads, MLP ratio 4 with
GELU, cross-attention to the caption in the spatial blocks. What differs and stays: minisora encodes caption ids
with its own small text encoder (counted in its time), Latte projects given caption embeddings (of the text
encoder's width); minisora's blocks regress their own adaLN-Zero modulation, Latte's share one (adaLN-single).
The two models alternate step by step, so drifts of a noisy machine hit both alike; the table reports medians.
FLOPs are counted by torch's FlopCounterMode on one step (multiply-adds x 2).
"""
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from minisora.models.video_dit import VideoDiT, VideoDiTConfig
from peer_timing import median_seconds_in_turn, peer_arguments

# (name, shape, batch)
CASES = [
    ("tiny preset's shape: 16 x 32 x 32 x 3, p=8, D=128, 3+3 blocks", dict(frames=16, size=32, channels=3, patch=8,
                                                                          hidden=128, layers=3, heads=4), 32),
    ("Latte-S-like on latents: 16 x 32 x 32 x 4, p=2, D=384, 6+6 blocks", dict(frames=16, size=32, channels=4, patch=2,
                                                                               hidden=384, layers=6, heads=6), 2),
]
CAPTION_LENGTH, TEXT_WIDTH, VOCABULARY = 12, 64, 40


def build_pair(shape: dict):
    from diffusers import LatteTransformer3DModel

    ours = VideoDiT(VideoDiTConfig(in_channels=shape["channels"], patch_size=shape["patch"], temporal_patch=1,
                                   hidden=shape["hidden"], depth=2 * shape["layers"], heads=shape["heads"],
                                   layout="latte_interleaved", vocabulary_size=VOCABULARY,
                                   caption_length=CAPTION_LENGTH, text_hidden=TEXT_WIDTH))
    theirs = LatteTransformer3DModel(num_attention_heads=shape["heads"],
                                     attention_head_dim=shape["hidden"] // shape["heads"],
                                     in_channels=shape["channels"], out_channels=shape["channels"],
                                     num_layers=shape["layers"], cross_attention_dim=shape["hidden"],
                                     sample_size=shape["size"], patch_size=shape["patch"],
                                     activation_fn="gelu-approximate", norm_type="ada_norm_single",
                                     norm_elementwise_affine=False, norm_eps=1e-6, caption_channels=TEXT_WIDTH,
                                     video_length=shape["frames"])
    return ours, theirs


def parameters(model) -> float:
    return sum(parameter.numel() for parameter in model.parameters()) / 1e6


def matmul_gflops(size: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e9


def main():
    args = peer_arguments(__doc__)
    import diffusers

    rate = matmul_gflops()
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, {args.threads} CPU threads, "
          f"{args.repeats} timed steps each (median), forward + backward in float32; a 1024^3 float32 matmul runs "
          f"at {rate:.0f} GFLOP/s here\n")
    print("| case | batch | parameters (minisora / diffusers) | minisora s/step | diffusers s/step | diffusers / minisora "
          "| minisora GFLOP/s (of matmul rate) | diffusers GFLOP/s (of matmul rate) |")
    print("| --- " * 8 + "|")
    for name, shape, batch in CASES:
        torch.manual_seed(0)
        ours, theirs = build_pair(shape)
        x = torch.randn(batch, shape["channels"], shape["frames"], shape["size"], shape["size"])
        target = torch.randn_like(x)
        ids = torch.randint(3, VOCABULARY, (batch, CAPTION_LENGTH))
        captions = torch.randn(batch, CAPTION_LENGTH, TEXT_WIDTH)
        timesteps = torch.randint(0, 1000, (batch,))
        steps = {
            "ours": lambda: ours(x, timesteps.float(), ids),
            "theirs": lambda: theirs(x, timestep=timesteps, encoder_hidden_states=captions).sample,
        }
        models = {"ours": ours, "theirs": theirs}

        def training_step(key):
            models[key].zero_grad(set_to_none=True)
            torch.nn.functional.mse_loss(steps[key](), target).backward()

        flops = {}
        for key in steps:
            with FlopCounterMode(display=False) as counter:
                training_step(key)
            flops[key] = counter.get_total_flops()
        seconds = median_seconds_in_turn({key: lambda key=key: training_step(key) for key in steps}, args.repeats)
        ours_time, theirs_time = seconds["ours"], seconds["theirs"]
        ours_rate, theirs_rate = flops["ours"] / ours_time / 1e9, flops["theirs"] / theirs_time / 1e9
        print(f"| {name} | {batch} | {parameters(ours):.2f} M / {parameters(theirs):.2f} M | {ours_time:.3f} | "
              f"{theirs_time:.3f} | {theirs_time / ours_time:.2f} | {ours_rate:.0f} ({ours_rate / rate:.0%}) | "
              f"{theirs_rate:.0f} ({theirs_rate / rate:.0%}) |", flush=True)


if __name__ == "__main__":
    main()
