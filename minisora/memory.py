"""How much memory training needs, before you buy or rent the GPU (lesson 11): the planner counts it tensor by
tensor for a configuration, and `measure_peak_memory` measures it.

`python -m minisora memory --preset 256px|480p|720p10s|tiny [--key=value ...]` prints the plan as a table, from plain
float32 with the N x N attention matrix to bfloat16 + flash attention + activation checkpointing. The plan is per
process (per GPU): with `--processes=N` the batch is shared (DDP), the weights, gradients and optimizer state too
with `--parallel=fsdp`, and each clip's tokens with `--sequence_parallel=P` (lesson 14).

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
from .parallel.data_parallel import check_parallel_mode
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
    print(json.dumps({"peak_bytes": (_status_kilobytes("VmHWM") - before) * 1024}), flush=True)
    if torch.distributed.is_initialized():  # measure_peak_memory's processes leave their group together
        from .parallel.data_parallel import leave_group

        del run  # the step's model: its sharded modules must go while the group lives
        leave_group()


def measure_peak_memory(prepare: Callable, *arguments, processes: int = 1) -> int:
    """Bytes by which resident memory peaks while `prepare(*arguments)()` runs, above where it stood once `prepare`
    had built its inputs, measured in a fresh process (Linux only: it reads /proc). `prepare` must be a top-level
    function of an importable module or of a .py file; `arguments` must be JSON values. One-time costs (libraries
    loaded on first use, the autograd engine's threads) count unless `prepare` warms up on a small input first.
    With `processes` > 1 that many fresh processes run it together, as torchrun would start them (RANK,
    WORLD_SIZE, a local rendezvous), and the largest of their peaks is returned."""
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
    if processes > 1:
        from .parallel.launch import free_port

        environment.update(WORLD_SIZE=str(processes), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
                           GLOO_SOCKET_IFNAME="lo")
    children = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env={**environment, "RANK": str(rank), "LOCAL_RANK": str(rank)})
                for rank in range(processes)]
    peaks = []
    for child in children:
        try:
            stdout, stderr = child.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for other in children:
                other.kill()
            raise RuntimeError(f"measuring {prepare.__name__}{tuple(arguments)} did not end in 300 s") from None
        if child.returncode != 0:
            for other in children:
                other.kill()
            raise RuntimeError(f"measuring {prepare.__name__}{tuple(arguments)} failed:\n{stderr[-2000:]}")
        peaks.append(json.loads(stdout.strip().splitlines()[-1])["peak_bytes"])
    return max(peaks)


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
    "caption_tokens": "[0, inf)", "text_hidden": "[1, inf)", "processes": "[1, inf)", "sequence_parallel": "[1, inf)",
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
    caption_tokens: int = 0  # caption tokens every block cross-attends to (the video DiT's caption_length; 0: the
    # class-free DiT's blocks, no cross-attention); the caption encoder itself is small and not counted
    text_hidden: int = 64  # width of the caption tokens, the cross-attention's keys' and values' source
    batch_size: int = 8  # clips per step (the whole step's, shared among the processes)
    precision: str = "bf16"  # "fp32", "bf16" or "fp16" (autocast: float32 master weights, 16-bit matmuls)
    attention: str = "flash"  # "math" keeps the N x N probabilities for backward; "flash" (or "sdpa") does not
    checkpoint_activations: bool = True  # keep only each block's input; recompute the rest in the backward pass
    gpu_gib: float = 24.0  # the GPU's memory (an RTX 4090: 24 GiB)
    reserved_gib: float = 1.0  # CUDA context and library workspaces, outside PyTorch's allocator
    processes: int = 1  # GPUs (one process each) training together: the plan is for one of them
    parallel: str = "ddp"  # "ddp": each process holds the whole model; "fsdp": parameters, gradients, optimizer state
    # and EMA divided among the processes, each block gathered whole while it runs (ZeRO-3)
    sequence_parallel: int = 1  # processes sharing each clip's tokens (Ulysses: heads split for attention); the
    # batch is shared among the processes / sequence_parallel groups

    def __post_init__(self):
        check_ranges(self, MEMORY_CONFIG_RANGES)
        check_parallel_mode(self.parallel)


DIT_L = dict(hidden=1024, depth=24, heads=16)  # DiT-L (Peebles & Xie 2023, Table 1): 457 M parameters here
MEMORY_PRESETS = {
    # 17 frames of 256 x 256 -> latents 4 x 5 x 32 x 32 -> 1,280 tokens a clip; DiT-L/2, 16 clips a step
    "256px": MemoryConfig(batch_size=16, **DIT_L),
    # 3 s at 24 fps of 480p (73 frames of 480 x 848) -> latents 4 x 19 x 60 x 106 -> 30,210 tokens; DiT-L/2
    "480p": MemoryConfig(frames=73, height=480, width=848, batch_size=1, **DIT_L),
    # the text-to-video tiny preset's DiT (`train --preset tiny`): 16 frames of 32 x 32 pixels, 2 x 8 x 8 patches
    # (128 tokens a clip), D = 128, 6 blocks, 32 clips a step; its caption encoder and cross-attention are not counted
    # 10.5 s at 24 fps of 720p (253 frames of 720 x 1280) -> latents 4 x 64 x 90 x 160 -> 230,400 tokens; DiT-L/2
    # on 8 GPUs that share each clip's tokens (Ulysses; 64 latent frames, 8 each) and hold the whole model (DDP)
    "720p10s": MemoryConfig(frames=253, height=720, width=1280, batch_size=1, processes=8, sequence_parallel=8,
                            **DIT_L),
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


def count_block_parameters(config: MemoryConfig) -> int:
    """One transformer block's parameters (adaLN-Zero; with captions, the video DiT's cross-attention too)."""
    dim, width = config.hidden, int(config.hidden * config.mlp_ratio)
    attention = 4 * dim * dim + 4 * dim  # Q, K, V, output projections with biases
    mlp = 2 * dim * width + width + dim
    modulation = 6 * dim * dim + 6 * dim  # shift, scale, gate for both sublayers, regressed from c
    # its LayerNorm's affine, queries and output from the tokens, keys and values from the caption tokens
    cross = 2 * dim + 2 * (dim * dim + dim) + 2 * (config.text_hidden * dim + dim) if config.caption_tokens else 0
    return attention + mlp + modulation + cross


def count_dit_parameters(config: MemoryConfig) -> int:
    """The DiT's parameters (adaLN-Zero, no class labels; the caption encoder not counted), counted by hand; the
    tests check it against a DiT and the video DiT's blocks."""
    dim = config.hidden
    patch_values = config.temporal_patch * config.patch_size ** 2 * config.latent_channels
    embeddings = patch_values * dim + dim + 256 * dim + dim + dim * dim + dim  # patches; the noise level's MLP
    final = 2 * dim * dim + 2 * dim + dim * patch_values + patch_values
    return config.depth * count_block_parameters(config) + embeddings + final


def share_of_each_process(config: MemoryConfig) -> Tuple[int, int]:
    """(clips, tokens of each clip) one process works on: the batch divided among the processes / sequence_parallel
    data-parallel groups, each clip's tokens among the sequence_parallel processes of a group (whole token frames, as
    the trainer shares them, and heads split by Ulysses). A sharing that does not divide is a clear error."""
    sequence, frames = config.sequence_parallel, token_grid(config)[0]
    if config.processes % sequence:
        raise ValueError(f"sequence_parallel={sequence} must divide processes={config.processes}: each group of "
                         f"{sequence} processes shares a clip's tokens")
    groups = config.processes // sequence
    if config.batch_size % groups:
        raise ValueError(f"batch_size={config.batch_size} does not divide among the {groups} data-parallel groups "
                         f"(processes / sequence_parallel); choose a multiple of {groups}")
    if frames % sequence or config.heads % sequence:
        raise ValueError(f"sequence_parallel={sequence} must divide the {frames} token frames (each process holds "
                         f"whole frames) and the {config.heads} heads (Ulysses splits them); choose another frame "
                         f"count or sequence_parallel")
    return config.batch_size // groups, math.prod(token_grid(config)) // sequence


def block_activations(config: MemoryConfig) -> List[Tuple[str, str, float]]:
    """What autograd keeps from one adaLN-Zero DiT block for the backward pass: (sublayer, tensor, bytes). With
    E = B N D values, the residual stream, norms and modulation stay float32 under autocast, while the linear
    layers' inputs and outputs are in the compute precision (each linear casts its float32 input to its own copy)."""
    batch, tokens = share_of_each_process(config)  # this process's clips and tokens
    whole_tokens, heads = tokens * config.sequence_parallel, config.heads // config.sequence_parallel
    values = batch * tokens * config.hidden  # E
    stream, compute = 4 * values, BYTES[config.precision] * values
    cast = config.precision != "fp32"  # autocast's 16-bit copies of float32 inputs
    rows = [
        ("attention", "norm1 input x (the block's input)", stream),
        ("attention", "norm1 output, kept by the modulation", stream),
        ("attention", "attention input (modulated)", 2 * compute if cast else stream),  # Q's and K/V's casts
        ("attention", "queries", compute),
        ("attention", "keys and values", 2 * compute),
    ]
    probability_bytes = 4 + (2 if cast else 0)  # softmax keeps P in float32; under autocast P V keeps a 16-bit copy
    if config.attention == "math":
        scores = batch * heads * whole_tokens ** 2  # B heads N N (under Ulysses: the process's heads, every token)
        rows.append(("attention", "attention probabilities P (B heads N N)", probability_bytes * scores))
    else:
        rows.append(("attention", "attention output O and log-sum-exp L", compute + 4 * batch * config.heads * tokens))
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
    if config.caption_tokens:  # the video DiT's x + CrossAttn(LN(x), caption tokens)
        captions = batch * config.caption_tokens
        rows += [
            ("cross-attention", "norm input (after the attention residual)", stream),
            ("cross-attention", "norm output, the queries' input", compute if cast else stream),
            ("cross-attention", "queries", compute),
            ("cross-attention", "caption keys and values", 2 * BYTES[config.precision] * captions * config.hidden),
            ("cross-attention", "attention probabilities P (B heads N M)" if config.attention == "math" else
             "attention output O and log-sum-exp L",
             probability_bytes * batch * config.heads * tokens * config.caption_tokens
             if config.attention == "math" else compute + 4 * batch * config.heads * tokens),
            ("cross-attention", "heads merged, the output projection's input", compute),
        ]
    return rows


def attention_scores_transient(config: MemoryConfig) -> float:
    """Bytes of N x N temporaries beside the kept P: the scaled scores in the forward pass, dP and dS in the
    backward pass (0 for flash attention, which works one tile at a time)."""
    if config.attention == "math":
        batch, tokens = share_of_each_process(config)
        whole_tokens, heads = tokens * config.sequence_parallel, config.heads // config.sequence_parallel
        return 2 * 4 * batch * heads * whole_tokens ** 2
    return 0.0


def plan_memory(config: MemoryConfig) -> Dict[str, float]:
    """Bytes of each part of one training step's peak on one process (AdamW, an EMA copy, float32 master weights).
    Under FSDP the weights, gradients, AdamW's moments and the EMA are 1/processes each, and `gathered` holds what
    is whole for a while: the root unit (embeddings, final layer) from forward to backward, two blocks' weights
    (the one running, the next one prefetched) and one block's whole gradients before they are reduce-scattered.
    DDP's gradients are views into its all-reduce buckets (`gradient_as_bucket_view`), so they cost no copy."""
    if config.precision not in BYTES:
        raise ValueError(f"unknown precision {config.precision!r}; choose one of {sorted(BYTES)}")
    parameters = count_dit_parameters(config)
    batch, tokens = share_of_each_process(config)
    stream = 4 * batch * tokens * config.hidden
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
    shards = config.processes if config.parallel == "fsdp" else 1
    parts = {"parameters": 4 * parameters / shards, "gradients": 4 * parameters / shards,
             "optimizer": 8 * parameters / shards, "ema": 4 * parameters / shards, "activations": activations,
             "transient": transient, "gathered": 0.0}
    if shards > 1:
        block = count_block_parameters(config)
        parts["gathered"] = 4 * (parameters - config.depth * block + 3 * block)
    parts["peak"] = sum(parts.values())
    parts["with_reserved"] = parts["peak"] + config.reserved_gib * GIB
    return parts


def planned_step_rise(config: MemoryConfig) -> float:
    """The part of the plan a forward + backward pass adds to a process whose weights already exist (what
    `measure_peak_memory` measures): the activations, the temporaries and FSDP's gathered weights, and the gradients,
    except under DDP on several processes, whose buckets hold them from the start."""
    parts = plan_memory(config)
    buckets_hold_gradients = config.processes > 1 and config.parallel == "ddp"
    return (parts["activations"] + parts["transient"] + parts["gathered"]
            + (0.0 if buckets_hold_gradients else parts["gradients"]))


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
             f"depth {config.depth}, {config.heads} heads: {count_dit_parameters(config) / 1e6:.1f} M parameters"]
    if config.processes > 1:
        batch, tokens = share_of_each_process(config)
        sharing = f", each clip's tokens shared by {config.sequence_parallel}" if config.sequence_parallel > 1 else ""
        held = ("1/N of the weights, gradients, AdamW and EMA" if config.parallel == "fsdp" else "the whole model")
        lines.append(f"per process of {config.processes} ({config.parallel.upper()}{sharing}): {batch} clip(s) of "
                     f"{tokens:,} tokens, {held}")
    lines += ["", "| variant | weights + grads + AdamW + EMA | activations | N x N, gathered weights, other "
              f"temporaries | peak (+{config.reserved_gib:g} GiB reserved) | fits {config.gpu_gib:g} GiB |",
              "| --- | --- | --- | --- | --- | --- |"]
    for name, variant in memory_variants(config):
        parts = plan_memory(variant)
        state = parts["parameters"] + parts["gradients"] + parts["optimizer"] + parts["ema"]
        fits = "yes" if parts["with_reserved"] <= config.gpu_gib * GIB else "no"
        temporaries = parts["transient"] + parts["gathered"]
        lines.append(f"| {name} | {state / GIB:.2f} GiB | {parts['activations'] / GIB:.2f} GiB | "
                     f"{temporaries / GIB:.2f} GiB | {parts['with_reserved'] / GIB:.2f} GiB | {fits} |")
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


def prepare_parallel_training_step(fields: dict) -> Callable[[], None]:
    """For `measure_peak_memory(prepare_parallel_training_step, asdict(config), processes=config.processes)`, on
    each process: the video DiT of the plan's blocks (spacetime attention, cross-attention to random captions when
    caption_tokens > 0) shared as `parallel` and `sequence_parallel` say, and this process's share of a random batch
    (its rows, or under sequence parallelism every clip), warmed up on one clip first; the returned step runs
    forward, loss and backward, the gradients' all-reduce or reduce-scatter included (float32, gloo)."""
    from .models.video_dit import VideoDiT, VideoDiTConfig
    from .parallel import data_parallel

    config = MemoryConfig(**fields)
    parallel = data_parallel.start(config.parallel, "cpu", config.sequence_parallel)
    torch.manual_seed(0)  # every process builds the same weights
    network = VideoDiT(VideoDiTConfig(
        in_channels=config.latent_channels, patch_size=config.patch_size, temporal_patch=config.temporal_patch,
        hidden=config.hidden, depth=config.depth, heads=config.heads, mlp_ratio=config.mlp_ratio,
        vocabulary_size=16 if config.caption_tokens else 0, caption_length=max(config.caption_tokens, 2),
        text_hidden=config.text_hidden, attention_backend=config.attention,
        checkpoint_activations=config.checkpoint_activations))
    model = network if parallel is None else parallel.wrap(network)
    batch, _ = share_of_each_process(config)
    rank = 0 if parallel is None or config.sequence_parallel > 1 else parallel.rank
    model_config = dit_config(config)
    shape = (config.batch_size, config.latent_channels, model_config.frames, model_config.input_size,
             model_config.input_size)
    x, target = torch.randn(shape)[rank * batch:(rank + 1) * batch], torch.randn(shape)[rank * batch:(rank + 1) * batch]
    noise_level = torch.rand(batch)
    captions = torch.randint(3, 16, (batch, config.caption_tokens)) if config.caption_tokens else None

    def step(clips: int) -> None:
        caption = None if captions is None else captions[:clips]
        model(x[:clips], noise_level[:clips], caption).sub(target[:clips]).square().mean().backward()

    for _ in range(2):  # warm-up on one clip, twice: DDP rebuilds its gradient buckets after its first backward pass
        step(1)
        network.zero_grad(set_to_none=True)
    return lambda: step(batch)


def run_memory(config: MemoryConfig) -> Dict[str, float]:
    """`python -m minisora memory`: print the table; return the plan of the configuration as given."""
    print(memory_table(config))
    return plan_memory(config)
