"""The memory planner's 24 GB presets, trained for real on a CUDA GPU: the planned peak of a whole training step
(float32 weights, gradients, AdamW, EMA, activations) against `torch.cuda.max_memory_allocated`, with the step time
and the model FLOP/s, for each rung of lesson 11's ladder (needs a GPU).

    python benchmarks/gpu_memory_presets.py [--steps 3] [--presets 256px 480p]

DiT takes square latents, so "480p" is measured as the square video of (nearly) the same token count: 73 frames of
640 x 640 (30,400 tokens a clip against 480 x 848's 30,210). A variant that runs out of the GPU's memory is reported
as such (the plan said it would not fit 24 GB either way). FLOP/s count the model's matrix products (3 x the
forward pass: forward, and backward's two products per forward one), not checkpointing's recomputation.
"""
import argparse
import statistics
import time
from dataclasses import replace

import torch

from minisora.memory import GIB, MEMORY_PRESETS, dit_config, memory_variants, plan_memory, token_grid
from minisora.models.dit import DiT, analytic_gflops
from minisora.train.ema import make_ema, update_ema
from minisora.train.precision import MixedPrecision

MEASURED_PRESETS = {
    "256px": MEMORY_PRESETS["256px"],
    "480p": replace(MEMORY_PRESETS["480p"], height=640, width=640),  # a square of 480p's token count
}


def training_steps(config, steps: int):
    """Peak bytes allocated over `steps` full training steps after a first one (which creates AdamW's state), and
    the median seconds of a step."""
    torch.cuda.empty_cache()
    model = DiT(dit_config(config)).cuda()
    ema = make_ema(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    precision = MixedPrecision(config.precision, "cuda")
    shape = (config.batch_size, config.latent_channels, model.config.frames, model.config.input_size,
             model.config.input_size)
    x, target = torch.randn(shape, device="cuda"), torch.randn(shape, device="cuda")
    noise_level = torch.rand(config.batch_size, device="cuda")
    seconds = []
    for step in range(steps + 1):
        if step == 1:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        with precision.autocast():
            loss = model(x, noise_level).float().sub(target).square().mean()
        precision.backward(loss)
        precision.step(optimizer, model.parameters(), step, loss)
        optimizer.zero_grad(set_to_none=True)
        update_ema(ema, model, 0.999)
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return torch.cuda.max_memory_allocated(), statistics.median(seconds[1:])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="measured steps after the first")
    parser.add_argument("--presets", nargs="+", default=list(MEASURED_PRESETS), choices=list(MEASURED_PRESETS))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU")
    total_gib = torch.cuda.get_device_properties(0).total_memory / GIB
    print(f"{torch.cuda.get_device_name()} ({total_gib:.0f} GiB), torch {torch.__version__}")
    for name in args.presets:
        config = MEASURED_PRESETS[name]
        grid = token_grid(config)
        flops = 3 * 2 * analytic_gflops(dit_config(config)) * 1e9 * config.batch_size
        print(f"\n{name}: {config.frames} frames of {config.height} x {config.width}, {grid[0] * grid[1] * grid[2]:,} "
              f"tokens a clip, batch {config.batch_size}, DiT D={config.hidden} depth {config.depth}\n")
        print("| variant | planned peak GiB | measured peak GiB | measured / planned | step s | model TFLOP/s |")
        print("| --- | --- | --- | --- | --- | --- |")
        for variant_name, variant in memory_variants(config)[1:]:
            planned = plan_memory(variant)["peak"]
            try:
                peak, seconds = training_steps(variant, args.steps)
            except torch.OutOfMemoryError:
                torch.cuda.empty_cache()
                print(f"| {variant_name} | {planned / GIB:.1f} | out of memory (> {total_gib:.0f}) | | | |", flush=True)
                continue
            print(f"| {variant_name} | {planned / GIB:.2f} | {peak / GIB:.2f} | {peak / planned:.2f} | {seconds:.3f} | "
                  f"{flops / seconds / 1e12:.0f} |", flush=True)


if __name__ == "__main__":
    main()
