"""What sharing the work among processes sends, and what it costs on this machine: bytes each process sends per step
for DDP, FSDP, Ulysses, ring attention and DSP, counted at the collectives, against the closed-form count, and the
time of the step on 2 processes beside the same work on 1.

    python benchmarks/parallel_communication.py [--repeats 5]

DDP and FSDP: a training step (forward, backward, the optimizer) of the tiny preset's video DiT (2.4 M parameters)
on a batch of 8 clips, AdamW. Sequence parallelism: one attention layer's forward and backward on 4096 tokens
(B 2, 4 heads of 32; DSP: 16 frames x 256 positions, temporal attention), float32. Bytes are counted by wrapping
torch.distributed's collectives (and DDP's comm hook) and charging each call what a ring or pairwise algorithm sends
from one process: all-reduce 2 (P-1)/P of the tensor, all-gather (P-1) times the input, reduce-scatter and
all-to-all (P-1)/P of the input, a send the tensor. The closed forms, for Psi parameters (4 bytes each) and a
process's activation share A = B S D / P (4 bytes each): DDP 2 (P-1)/P 4 Psi; FSDP 3 (P-1)/P 4 Psi (weights
gathered for the forward and again for the backward, gradients reduce-scattered; the root unit stays gathered
between the two, so slightly less); Ulysses 8 (P-1)/P 4A (four all-to-alls forward, four backward); ring
(2 (P-1) + 4 P) 4A (K and V forward P-1 hops; K, V, dK, dV backward P hops); DSP 4 (P-1)/P 4A.
The times put 2 processes of a thread each beside 1 process of one thread (half the cores) and of two (the same
cores): on 2 CPU cores the second is the fair peer. On a GPU node each process has its own GPU and the links are
NVLink or InfiniBand.
"""
import argparse
import statistics
import time
from collections import defaultdict

import torch
import torch.distributed as dist

from minisora.data.buckets import Bucket
from minisora.parallel.data_parallel import DataParallel
from minisora.parallel.launch import run_on_processes
from minisora.parallel.sequence import (frames_to_positions, positions_to_frames, ring_attention, shard_of,
                                        ulysses_attention)
from minisora.parallel.checks import temporal_attention
from minisora.models.attention import attention_sdpa
from minisora.train.optimizers import build_optimizer
from minisora.trained_model import build_denoiser
from minisora.train.video import batch_loss, training_view
from minisora.video_config import VIDEO_PRESETS

SENT = defaultdict(float)  # bytes this process sent, by collective


def size(tensor: torch.Tensor) -> float:
    return tensor.numel() * tensor.element_size()


def counting(name: str, charge):
    original = getattr(dist, name)

    def wrapped(*arguments, **keywords):
        SENT[name] += charge(dist.get_world_size(), *arguments, **keywords)
        return original(*arguments, **keywords)
    setattr(dist, name, wrapped)


def count_collectives() -> None:
    counting("all_reduce", lambda p, tensor, *a, **k: 2 * (p - 1) / p * size(tensor))
    counting("all_gather_single", lambda p, output, input, *a, **k: (p - 1) * size(input))
    counting("reduce_scatter_single", lambda p, output=None, input=None, *a, **k: (p - 1) / p * size(input))
    counting("all_to_all_single", lambda p, output, input, *a, **k: (p - 1) / p * size(input))
    counting("all_gather", lambda p, outputs, tensor, *a, **k: (p - 1) * size(tensor))
    counting("isend", lambda p, tensor, *a, **k: size(tensor))


def training_step(mode: str, repeats: int):
    """A DDP or FSDP training step on this process (or alone with mode "alone"): (seconds, bytes sent, parameters)."""
    config = VIDEO_PRESETS["tiny"]
    generator = torch.Generator().manual_seed(0)
    sets = [(Bucket(16, 32, 32, 8), torch.rand(64, 3, 16, 32, 32, generator=generator) * 2 - 1,
             torch.randint(3, 40, (64, config.caption_length), generator=generator))]
    torch.manual_seed(0)
    denoiser = build_denoiser(config, (3, 16, 32, 32), 40)
    parameters = sum(parameter.numel() for parameter in denoiser.parameters())
    parallel = None if mode == "alone" else DataParallel(dist.get_rank(), dist.get_world_size(),
                                                         torch.device("cpu"), mode)
    view, _ = training_view(denoiser, parallel)
    if mode == "ddp":  # DDP's own all-reduce runs in C++; through this hook it calls dist.all_reduce, counted
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
        parallel.wrapped.register_comm_hook(None, allreduce_hook)
    loss_of_batch = batch_loss(config, sets=sets, time_distribution="logit_normal", **view)
    optimizer = build_optimizer(denoiser, "adamw", 1e-3, 0.01)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_of_batch(generator).backward()
        optimizer.step()

    return measure(step, repeats), parameters


def attention_step(method: str, repeats: int):
    """One attention layer's forward and backward, sharded by `method` (or whole, "alone"): (seconds, bytes)."""
    generator = torch.Generator().manual_seed(0)
    if method in ("dsp", "dsp alone"):
        x = torch.randn(2, 16, 256, 128, generator=generator)
        mine = x if method == "dsp alone" else shard_of(x, 1)
        mine.requires_grad_(True)

        def step():
            out = temporal_attention(mine, 4) if method == "dsp alone" else positions_to_frames(
                temporal_attention(frames_to_positions(mine), 4))
            out.sum().backward()
        return measure(step, repeats), None
    q, k, v = (torch.randn(2, 4, 4096, 32, generator=generator) for _ in range(3))
    mine = [tensor if method == "alone" else shard_of(tensor, 2) for tensor in (q, k, v)]
    for tensor in mine:
        tensor.requires_grad_(True)
    attention = {"ulysses": ulysses_attention, "ring": ring_attention, "alone": lambda *t: attention_sdpa(*t, None)}

    def step():
        attention[method](*mine).sum().backward()
    return measure(step, repeats), None


def measure(step, repeats: int):
    step()  # warm-up
    SENT.clear()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times), sum(SENT.values()) / repeats


def on_each_process(kind: str, method: str, repeats: int, count: bool, threads: int = 1):
    torch.set_num_threads(threads)
    if count:
        count_collectives()
    if kind == "training":
        return training_step(method, repeats)
    return attention_step(method, repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    processes = 2
    print(f"torch {torch.__version__}, {processes} processes over gloo (a thread each) against 1 process of 1 and of 2 "
          f"threads, median of {args.repeats} steps\n")
    print("| what | bytes sent per process per step: counted | closed form | s/step: 2 processes, a thread each | "
          "1 process, 1 thread | 1 process, 2 threads |")
    print("| --- | --- | --- | --- | --- | --- |")
    ratio = (processes - 1) / processes

    def alone(kind, method, threads):  # the same work on one process
        return run_on_processes(on_each_process, 1, kind, method, args.repeats, False, threads)[0]

    (one_thread, _), parameters = alone("training", "alone", 1)
    (two_threads, _), _ = alone("training", "alone", 2)
    for mode, factor in (("ddp", 2 * ratio), ("fsdp", 3 * ratio)):
        ((seconds, sent), _) = run_on_processes(on_each_process, processes, "training", mode, args.repeats, True)[0]
        print(f"| {mode.upper()}, a training step ({parameters / 1e6:.2f} M parameters) | {sent / 1e6:.2f} MB | "
              f"{factor * 4 * parameters / 1e6:.2f} MB | {seconds:.3f} | {one_thread:.3f} | {two_threads:.3f} |",
              flush=True)
    share = 2 * 4096 * 128 / processes * 4  # B S D / P float32 bytes
    rows = (("ulysses", "alone", 8 * ratio, "Ulysses, one attention layer, 4096 tokens"),
            ("ring", "alone", 2 * (processes - 1) + 4 * processes, "ring, one attention layer, 4096 tokens"),
            ("dsp", "dsp alone", 4 * ratio, "DSP, one temporal attention layer, 16 x 256 tokens"))
    for method, whole, factor, name in rows:
        ((seconds, sent), _) = run_on_processes(on_each_process, processes, "attention", method, args.repeats, True)[0]
        (one_thread, _), _ = alone("attention", whole, 1)
        (two_threads, _), _ = alone("attention", whole, 2)
        print(f"| {name} | {sent / 1e6:.2f} MB | {factor * share / 1e6:.2f} MB | {seconds:.3f} | {one_thread:.3f} | "
              f"{two_threads:.3f} |", flush=True)


if __name__ == "__main__":
    main()
