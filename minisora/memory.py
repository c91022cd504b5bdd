"""How much memory training needs, before you buy or rent the GPU (lesson 11): the planner counts it tensor by
tensor for a configuration, and `measure_peak_memory` measures it.

`python -m minisora memory --preset 256px|480p|tiny [--key=value ...]` prints the plan as a table, from plain float32
with the N x N attention matrix to bfloat16 + flash attention + activation checkpointing.

`measure_peak_memory` runs a function in a fresh Python process and reports how far the process's resident memory
rose while it ran: the honest number on a CPU, where PyTorch keeps no allocator statistics.
"""
import importlib.util
import inspect
import json
import math
import os
import re
import subprocess
import sys
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Tuple

import torch

from .config import check_ranges
from .models.dit import DiT, DiTConfig
from .models.patches import check_patchable
from .train.precision import PRECISIONS


def _status_kilobytes(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+) kB", open("/proc/self/status").read()).group(1))


def _import(module_name: str, path: str):
    """The module by its name where it is importable (a package's module), else loaded from its file."""
    if module_name != "__main__":
        try:
            return importlib.import_module(module_name)
        except ImportError:
            pass
    spec = importlib.util.spec_from_file_location("_measured_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _measure_in_this_process(module_name: str, path: str, name: str, arguments_json: str) -> None:
    """The child's side of `measure_peak_memory`: prepare, note the resident set, reset its high-water mark, run."""
    torch.set_num_threads(1)
    run = getattr(_import(module_name, path), name)(*json.loads(arguments_json))
    before = _status_kilobytes("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # Linux: reset VmHWM, the peak resident set, to the current one
    run()
    print(json.dumps({"peak_bytes": (_status_kilobytes("VmHWM") - before) * 1024}))


def measure_peak_memory(prepare: Callable, *arguments) -> int:
    """Bytes by which resident memory peaks while `prepare(*arguments)()` runs, above where it stood once `prepare`
    had built its inputs, measured in a fresh process (Linux only: it reads /proc). `prepare` must be a top-level
    function of an importable module or of a .py file; `arguments` must be JSON values. One-time costs (libraries
    loaded on first use, the autograd engine's threads) count unless `prepare` warms up on a small input first."""
    if not os.path.exists("/proc/self/clear_refs"):
        raise RuntimeError("measure_peak_memory reads Linux's /proc/self/status; on other systems use a GPU's "
                           "torch.cuda.max_memory_allocated instead")
    code = (f"from minisora.memory import _measure_in_this_process; "
            f"_measure_in_this_process({prepare.__module__!r}, {inspect.getfile(prepare)!r}, {prepare.__name__!r}, "
            f"{json.dumps(arguments)!r})")
    # a fixed mmap threshold makes glibc return every freed block of 64 KiB or more to the system at once, so the
    # resident set follows the live tensors instead of keeping freed memory for reuse
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536",
                   "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment)
    if result.returncode != 0:
        raise RuntimeError(f"measuring {prepare.__name__}{tuple(arguments)} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_bytes"]


# ---------------------------------------------------------------------------------------------------------------
# The planner: what one training step of a spacetime DiT on video latents holds in memory, counted tensor by tensor.

GIB = 2**30
BYTES = {name: (dtype or torch.float32).itemsize for name, dtype in PRECISIONS.items()}  # per value, by precision


# the range of every numeric field of MemoryConfig
MEMORY_CONFIG_RANGES = {
    "frames": "[1, inf)", "height": "[1, inf)", "width": "[1, inf)", "spatial_downsample": "[1, inf)",
    "temporal_downsample": "[1, inf)", "latent_channels": "[1, inf)", "patch_size": "[1, inf)",
    "temporal_patch": "[1, inf)", "hidden": "[1, inf)", "depth": "[1, inf)", "heads": "[1, inf)",
    "mlp_ratio": "(0, inf)", "batch_size": "[1, inf)", "gpu_gib": "(0, inf)", "reserved_gib": "[0, inf)",
}


@dataclass
class MemoryConfig:
    frames: int = 17  # video frames (1 + temporal_downsample * k for the causal VAE)
    height: int = 256  # video height in pixels
    width: int = 256  # video width in pixels
    spatial_downsample: int = 8  # the VAE's (1: a pixel-space model)
    temporal_downsample: int = 4  # the VAE's (1: every frame its own latent frame)
    latent_channels: int = 4  # channels of the latents the DiT sees
    patch_size: int = 2  # spatial patch side p
    temporal_patch: int = 1  # latent frames per patch
    hidden: int = 768  # token width D (DiT-B)
    depth: int = 12  # transformer blocks
    heads: int = 12  # attention heads
    mlp_ratio: float = 4.0  # MLP width / D
    batch_size: int = 8  # clips per step
    precision: str = "bf16"  # "fp32", "bf16" or "fp16" (autocast: float32 master weights, 16-bit matmuls)
    attention: str = "flash"  # "math" keeps the N x N probabilities for backward; "flash" (or "sdpa") does not
    checkpoint_activations: bool = True  # keep only each block's input; recompute the rest in the backward pass
    gpu_gib: float = 24.0  # the GPU's memory (an RTX 4090: 24 GiB)
    reserved_gib: float = 1.0  # CUDA context and library workspaces, outside PyTorch's allocator

    def __post_init__(self):
        check_ranges(self, MEMORY_CONFIG_RANGES)


DIT_L = dict(hidden=1024, depth=24, heads=16)  # DiT-L (Peebles & Xie 2023, Table 1): 457 M parameters here
MEMORY_PRESETS = {
    # 17 frames of 256 x 256 -> latents 4 x 5 x 32 x 32 -> 1,280 tokens a clip; DiT-L/2, 16 clips a step
    "256px": MemoryConfig(batch_size=16, **DIT_L),
    # 3 s at 24 fps of 480p (73 frames of 480 x 848) -> latents 4 x 19 x 60 x 106 -> 30,210 tokens; DiT-L/2
    "480p": MemoryConfig(frames=73, height=480, width=848, batch_size=1, **DIT_L),
    # the text-to-video tiny preset's DiT (`train --preset tiny`): 16 frames of 32 x 32 pixels, 2 x 8 x 8 patches
    # (128 tokens a clip), D = 128, 6 blocks, 32 clips a step; its caption encoder and cross-attention are not counted
    "tiny": MemoryConfig(frames=16, height=32, width=32, spatial_downsample=1, temporal_downsample=1,
                         latent_channels=3, patch_size=8, temporal_patch=2, hidden=128, depth=6, heads=4,
                         batch_size=32, precision="fp32", attention="sdpa", checkpoint_activations=False),
}


def token_grid(config: MemoryConfig) -> Tuple[int, int, int]:
    """(t, h, w) patches of the latent video, with clear errors for sizes that do not divide."""
    if (config.frames - 1) % config.temporal_downsample:
        raise ValueError(f"frames={config.frames} must be 1 + {config.temporal_downsample} k for a causal VAE with "
                         f"temporal_downsample={config.temporal_downsample}")
    latent_frames = 1 + (config.frames - 1) // config.temporal_downsample if config.temporal_downsample > 1 \
        else config.frames
    downsample = config.spatial_downsample
    if config.height % downsample or config.width % downsample:
        raise ValueError(f"a {config.height} x {config.width} video does not divide by the VAE's spatial_downsample="
                         f"{downsample}; choose sides that are multiples of it")
    latent_shape = (latent_frames, config.height // downsample, config.width // downsample)
    return check_patchable(latent_shape, (config.temporal_patch, config.patch_size, config.patch_size))


def dit_config(config: MemoryConfig) -> DiTConfig:
    """The DiT the planner describes (square latents only: DiT's own limit), to build and measure."""
    if config.height != config.width:
        raise ValueError(f"DiT takes square inputs; got {config.height} x {config.width} (the planner does not mind)")
    latent_frames = token_grid(config)[0] * config.temporal_patch
    return DiTConfig(input_size=config.height // config.spatial_downsample, frames=latent_frames,
                     in_channels=config.latent_channels, patch_size=config.patch_size,
                     temporal_patch=config.temporal_patch, hidden=config.hidden, depth=config.depth,
                     heads=config.heads, mlp_ratio=config.mlp_ratio, num_classes=0, learn_sigma=False,
                     attention_backend=config.attention, checkpoint_activations=config.checkpoint_activations)


def count_dit_parameters(config: MemoryConfig) -> int:
    """The DiT's parameters (adaLN-Zero, no class labels), counted by hand; the test checks it against a DiT."""
    dim, width = config.hidden, int(config.hidden * config.mlp_ratio)
    patch_values = config.temporal_patch * config.patch_size ** 2 * config.latent_channels
    attention = 4 * dim * dim + 4 * dim  # Q, K, V, output projections with biases
    mlp = 2 * dim * width + width + dim
    modulation = 6 * dim * dim + 6 * dim  # shift, scale, gate for both sublayers, regressed from c
    embeddings = patch_values * dim + dim + 256 * dim + dim + dim * dim + dim  # patches; the noise level's MLP
    final = 2 * dim * dim + 2 * dim + dim * patch_values + patch_values
    return config.depth * (attention + mlp + modulation) + embeddings + final


def block_activations(config: MemoryConfig) -> List[Tuple[str, str, float]]:
    """What autograd keeps from one adaLN-Zero DiT block for the backward pass: (sublayer, tensor, bytes). With
    E = B N D values, the residual stream, norms and modulation stay float32 under autocast, while the linear
    layers' inputs and outputs are in the compute precision (each linear casts its float32 input to its own copy)."""
    tokens = math.prod(token_grid(config))
    values = config.batch_size * tokens * config.hidden  # E
    stream, compute = 4 * values, BYTES[config.precision] * values
    cast = config.precision != "fp32"  # autocast's 16-bit copies of float32 inputs
    rows = [
        ("attention", "norm1 input x (the block's input)", stream),
        ("attention", "norm1 output, kept by the modulation", stream),
        ("attention", "attention input (modulated)", 2 * compute if cast else stream),  # Q's and K/V's casts
        ("attention", "queries", compute),
        ("attention", "keys and values", 2 * compute),
    ]
    if config.attention == "math":
        scores = config.batch_size * config.heads * tokens ** 2  # B heads N N
        # softmax keeps P in float32; under autocast P V keeps a 16-bit copy too
        rows.append(("attention", "attention probabilities P (B heads N N)", (4 + (2 if cast else 0)) * scores))
    else:
        rows.append(("attention", "attention output O and log-sum-exp L", compute + 4 * config.batch_size
                     * config.heads * tokens))
    rows += [
        ("attention", "heads merged, the output projection's input", compute),
        ("attention", "attention branch output, kept by the gate", compute),
        ("mlp", "norm2 input (after the attention residual)", stream),
        ("mlp", "norm2 output, kept by the modulation", stream),
        ("mlp", "MLP input (modulated)", compute if cast else stream),
        ("mlp", "MLP hidden before GELU", config.mlp_ratio * compute),
        ("mlp", "MLP hidden after GELU", config.mlp_ratio * compute),
        ("mlp", "MLP branch output, kept by the gate", compute),
    ]
    return rows


def attention_scores_transient(config: MemoryConfig) -> float:
    """Bytes of N x N temporaries beside the kept P: the scaled scores in the forward pass, dP and dS in the
    backward pass (0 for flash attention, which works one tile at a time)."""
    if config.attention == "math":
        return 2 * 4 * config.batch_size * config.heads * math.prod(token_grid(config)) ** 2
    return 0.0


def plan_memory(config: MemoryConfig) -> Dict[str, float]:
    """Bytes of each part of one training step's peak (AdamW, an EMA copy, float32 master weights)."""
    if config.precision not in BYTES:
        raise ValueError(f"unknown precision {config.precision!r}; choose one of {sorted(BYTES)}")
    parameters = count_dit_parameters(config)
    batch_tokens = config.batch_size * math.prod(token_grid(config))
    stream = 4 * batch_tokens * config.hidden
    rows = block_activations(config)
    per_block = sum(size for _, _, size in rows)
    if config.checkpoint_activations:  # every block keeps its input; one block at a time is rebuilt in backward
        activations = config.depth * stream + per_block
    else:
        activations = config.depth * per_block
    activations += 3 * stream  # outside the blocks: the final layer's norm, modulation and projection inputs
    # beside the kept tensors: gradients in flight, and the N x N temporaries of the last block's attention backward,
    # which runs after its MLP's kept tensors have been freed (the backward pass frees each as soon as it is used)
    mlp_kept = sum(size for sublayer, _, size in rows if sublayer == "mlp")
    transient = max(attention_scores_transient(config) - mlp_kept, 0.0) + 2 * stream
    parts = {"parameters": 4 * parameters, "gradients": 4 * parameters, "optimizer": 8 * parameters,
             "ema": 4 * parameters, "activations": activations, "transient": transient}
    parts["peak"] = sum(parts.values())
    parts["with_reserved"] = parts["peak"] + config.reserved_gib * GIB
    return parts


def memory_variants(config: MemoryConfig) -> List[Tuple[str, MemoryConfig]]:
    """The configuration as given, and the ladder from plain float32 to every saver (lesson 11's contrast)."""
    return [("as configured", config),
            ("fp32, math attention", replace(config, precision="fp32", attention="math", checkpoint_activations=False)),
            ("bf16, math attention", replace(config, precision="bf16", attention="math", checkpoint_activations=False)),
            ("bf16, flash attention", replace(config, precision="bf16", attention="flash",
                                              checkpoint_activations=False)),
            ("bf16, flash, checkpointing", replace(config, precision="bf16", attention="flash",
                                                   checkpoint_activations=True)),
            ("fp32, flash, checkpointing", replace(config, precision="fp32", attention="flash",
                                                   checkpoint_activations=True))]


def memory_table(config: MemoryConfig) -> str:
    """A Markdown table of the plan for every variant, and whether each fits the GPU."""
    grid = token_grid(config)
    lines = [f"{config.frames} frames of {config.height} x {config.width} -> {math.prod(grid):,} tokens "
             f"({grid[0]} x {grid[1]} x {grid[2]}) per clip, batch {config.batch_size}; DiT D={config.hidden}, "
             f"depth {config.depth}, {config.heads} heads: {count_dit_parameters(config) / 1e6:.1f} M parameters",
             "",
             "| variant | weights + grads + AdamW + EMA | activations | N x N and other temporaries | peak "
             f"(+{config.reserved_gib:g} GiB reserved) | fits {config.gpu_gib:g} GiB |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, variant in memory_variants(config):
        parts = plan_memory(variant)
        state = parts["parameters"] + parts["gradients"] + parts["optimizer"] + parts["ema"]
        fits = "yes" if parts["with_reserved"] <= config.gpu_gib * GIB else "no"
        lines.append(f"| {name} | {state / GIB:.2f} GiB | {parts['activations'] / GIB:.2f} GiB | "
                     f"{parts['transient'] / GIB:.2f} GiB | {parts['with_reserved'] / GIB:.2f} GiB | {fits} |")
    return "\n".join(lines)


def prepare_training_step(fields: dict) -> Callable[[], None]:
    """For `measure_peak_memory(prepare_training_step, asdict(config))`: the planner's DiT and a batch of random
    latents are built (and warmed up on one clip) first; the returned step runs forward, loss and backward, in
    float32 on the CPU, which is what the plan's gradients + activations + temporaries count."""
    config = MemoryConfig(**fields)
    model = DiT(dit_config(config))
    shape = (config.batch_size, config.latent_channels, model.config.frames, model.config.input_size,
             model.config.input_size)
    x, target, noise_level = torch.randn(shape), torch.randn(shape), torch.rand(config.batch_size)
    model(x[:1], noise_level[:1]).sub(target[:1]).square().mean().backward()  # warm-up on one clip
    model.zero_grad(set_to_none=True)
    return lambda: model(x, noise_level).sub(target).square().mean().backward()


def run_memory(config: MemoryConfig) -> Dict[str, float]:
    """`python -m minisora memory`: print the table; return the plan of the configuration as given."""
    print(memory_table(config))
    return plan_memory(config)
