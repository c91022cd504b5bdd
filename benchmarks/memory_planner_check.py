"""The memory planner against measurement: planned gradients + activations + temporaries of one forward + backward
pass, and the peak the process's memory reached, for small DiT configurations on the CPU (float32); then per
process, for small video DiTs trained on 2 gloo processes (DDP, FSDP, sequence parallelism).

    python benchmarks/memory_planner_check.py

Each measurement runs in a fresh process (`minisora.memory.measure_peak_memory`). On a CUDA GPU the test suite's
`test_planned_peak_matches_cuda_allocator_statistics` makes the same comparison against
`torch.cuda.max_memory_allocated`, in bfloat16 as well.
"""
from dataclasses import asdict, replace

from minisora.memory import (MemoryConfig, measure_peak_memory, plan_memory, planned_step_rise,
                             prepare_parallel_training_step, prepare_training_step, token_grid)

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

VIDEO = replace(SMALL, attention="sdpa", checkpoint_activations=False)
PARALLEL_CASES = [  # changes to VIDEO, measured on each of `processes` processes
    dict(),
    dict(processes=2),
    dict(processes=2, parallel="fsdp"),
    dict(processes=2, sequence_parallel=2),
    dict(caption_tokens=12),
    dict(processes=2, caption_tokens=12),
    dict(processes=2, sequence_parallel=2, caption_tokens=12),
    # weights as large as the activations: 4 blocks of D = 256 on 4 clips of 256 tokens
    dict(height=16, width=16, hidden=256),
    dict(height=16, width=16, hidden=256, processes=2),
    dict(height=16, width=16, hidden=256, processes=2, parallel="fsdp"),
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
    print("\nper process: the video DiT's blocks (spacetime attention, SDPA), the plan's share of one forward and "
          "backward pass (planned_step_rise) against the larger of the processes' measured rises\n")
    print("| configuration (changes to the above, attention=sdpa) | processes | planned MiB | of it gradients | "
          "measured MiB | measured / planned |")
    print("| --- | --- | --- | --- | --- | --- |")
    for changes in PARALLEL_CASES:
        config = replace(VIDEO, **changes)
        planned, plan = planned_step_rise(config), plan_memory(config)
        gradients = 0.0 if config.processes > 1 and config.parallel == "ddp" else plan["gradients"]
        measured = measure_peak_memory(prepare_parallel_training_step, asdict(config), processes=config.processes)
        described = ", ".join(f"{key}={value}" for key, value in changes.items() if key != "processes") or "as above"
        print(f"| {described} | {config.processes} | {planned / 2**20:.1f} | {gradients / 2**20:.1f} | "
              f"{measured / 2**20:.1f} | {measured / planned:.2f} |", flush=True)


if __name__ == "__main__":
    main()
