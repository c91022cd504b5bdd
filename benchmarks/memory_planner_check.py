"""The memory planner against measurement: planned gradients + activations + temporaries of one forward + backward
pass, and the peak the process's memory reached, for small DiT configurations on the CPU (float32).

    python benchmarks/memory_planner_check.py

Each measurement runs in a fresh process (`minisora.memory.measure_peak_memory`). On a CUDA GPU the test suite's
`test_planned_peak_matches_cuda_allocator_statistics` makes the same comparison against
`torch.cuda.max_memory_allocated`, in bfloat16 as well.
"""
from dataclasses import asdict, replace

from minisora.memory import MemoryConfig, measure_peak_memory, plan_memory, prepare_training_step, token_grid

SMALL = MemoryConfig(frames=4, height=32, width=32, spatial_downsample=1, temporal_downsample=1, latent_channels=4,
                     patch_size=2, hidden=64, depth=4, heads=4, batch_size=4, precision="fp32")
CASES = [
    dict(attention="math", checkpoint_activations=False),
    dict(attention="flash", checkpoint_activations=False),
    dict(attention="flash", checkpoint_activations=True),
    dict(attention="math", checkpoint_activations=True),
    dict(attention="math", checkpoint_activations=False, hidden=128, heads=2, depth=2),
    dict(attention="sdpa", checkpoint_activations=False, frames=8, batch_size=2, temporal_patch=2),
    dict(attention="sdpa", checkpoint_activations=False, depth=8, hidden=96, heads=4, batch_size=8),
    dict(attention="sdpa", checkpoint_activations=True, depth=8, hidden=96, heads=4, batch_size=8),
]


def main():
    print("| configuration (changes to D=64, 4 blocks, 4 heads, 4 clips of 4 x 32 x 32 x 4, p=2) | tokens "
          "| planned MiB | measured MiB | measured / planned |")
    print("| --- | --- | --- | --- | --- |")
    for changes in CASES:
        config = replace(SMALL, **changes)
        plan = plan_memory(config)
        planned = plan["gradients"] + plan["activations"] + plan["transient"]
        measured = measure_peak_memory(prepare_training_step, asdict(config))
        tokens = token_grid(config)
        described = ", ".join(f"{key}={value}" for key, value in changes.items())
        print(f"| {described} | {tokens[0] * tokens[1] * tokens[2]} | {planned / 2**20:.1f} | {measured / 2**20:.1f} "
              f"| {measured / planned:.2f} |", flush=True)


if __name__ == "__main__":
    main()
