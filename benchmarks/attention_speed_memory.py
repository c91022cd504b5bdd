"""Time and peak memory of one attention forward + backward pass, backend by backend, against sequence length.

    python benchmarks/attention_speed_memory.py [--lengths 256 512 1024 2048 4096] [--heads 4] [--head-dim 64]

On the CPU it compares the attention module's backends: "math" (the formula, keeping the N x N probabilities for
the backward pass), "sdpa" (PyTorch's fused CPU kernel) and "flash" (minisora's tiled online-softmax attention).
Each peak is measured in a fresh process (the rise of its resident memory above the inputs, `minisora.memory`);
times are medians of interleaved repeats in this process, so a drift of the machine hits every backend alike.

On a CUDA GPU (with triton installed) it also times the Triton kernel against torch's SDPA in bfloat16, forward +
backward, at the given lengths, and reports TFLOP/s and the ratio to SDPA.
"""
import argparse
import statistics
import time

import torch

from minisora.memory import measure_peak_memory
from minisora.models.attention import get_attention_backend

BACKENDS = ("math", "sdpa", "flash")


def inputs(batch: int, heads: int, length: int, head_dim: int, dtype=torch.float32, device="cpu"):
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(batch, heads, length, head_dim, generator=generator).to(device, dtype).requires_grad_()
            for _ in range(3)]


def prepare_forward_backward(backend: str, batch: int, heads: int, length: int, head_dim: int):
    """What `measure_peak_memory` runs in its fresh process: a small warm-up pass (one-time costs), the inputs, then
    one forward + backward."""
    attention = get_attention_backend(backend)
    warm_up = inputs(1, 1, 64, head_dim)
    attention(*warm_up, None).backward(torch.randn_like(warm_up[0]))  # (.sum().backward() would not warm it all)
    q, k, v = inputs(batch, heads, length, head_dim)
    grad_out = torch.randn_like(q)
    return lambda: attention(q, k, v, None).backward(grad_out)


def forward_backward_seconds(attention, q, k, v, grad_out) -> float:
    if q.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    attention(q, k, v, None).backward(grad_out)
    if q.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def attention_flops(batch: int, heads: int, length: int, head_dim: int) -> float:
    """Forward 2 matmuls of 2 N^2 d FLOPs each, backward 5 (one recomputes S): the count FlashAttention reports
    (the backward's 2.5x the forward)."""
    return 3.5 * 4 * batch * heads * length ** 2 * head_dim


def cpu_table(lengths, batch, heads, head_dim, repeats):
    print(f"CPU, float32, B={batch}, heads={heads}, d={head_dim}, forward + backward, {torch.get_num_threads()} "
          f"threads; peak = resident memory above the inputs, in a fresh single-threaded process\n")
    print("| N | " + " | ".join(f"{b} ms" for b in BACKENDS) + " | " + " | ".join(f"{b} peak MiB" for b in BACKENDS)
          + " | flash / math peak |")
    print("| --- " * (2 * len(BACKENDS) + 2) + "|")
    for length in lengths:
        q, k, v = inputs(batch, heads, length, head_dim)
        grad_out = torch.randn_like(q)
        times = {backend: [] for backend in BACKENDS}
        for backend in BACKENDS:  # warm-up
            forward_backward_seconds(get_attention_backend(backend), q, k, v, grad_out)
        for _ in range(repeats):
            for backend in BACKENDS:
                times[backend].append(forward_backward_seconds(get_attention_backend(backend), q, k, v, grad_out))
        peaks = {backend: measure_peak_memory(prepare_forward_backward, backend, batch, heads, length, head_dim)
                 for backend in BACKENDS}
        print(f"| {length} | " + " | ".join(f"{1000 * statistics.median(times[b]):.1f}" for b in BACKENDS) + " | "
              + " | ".join(f"{peaks[b] / 2**20:.1f}" for b in BACKENDS)
              + f" | {peaks['flash'] / peaks['math']:.3f} |", flush=True)


def gpu_table(lengths, batch, heads, head_dim, repeats):
    from minisora.kernels.triton_attention import triton_attention

    sdpa = get_attention_backend("sdpa")
    print(f"\n{torch.cuda.get_device_name()}, bfloat16, B={batch}, heads={heads}, d={head_dim}, forward + backward\n")
    print("| N | sdpa ms | triton ms | sdpa TFLOP/s | triton TFLOP/s | triton / sdpa speed | sdpa peak MiB "
          "| triton peak MiB |")
    print("| --- " * 8 + "|")
    for length in lengths:
        q, k, v = inputs(batch, heads, length, head_dim, torch.bfloat16, "cuda")
        grad_out = torch.randn_like(q)
        results = {}
        for name, attention in (("sdpa", sdpa), ("triton", triton_attention)):
            for _ in range(3):  # compile and warm up
                forward_backward_seconds(attention, q, k, v, grad_out)
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            seconds = statistics.median(forward_backward_seconds(attention, q, k, v, grad_out)
                                        for _ in range(repeats))
            results[name] = (seconds, torch.cuda.max_memory_allocated() - base)
        flops = attention_flops(batch, heads, length, head_dim)
        print(f"| {length} | {1000 * results['sdpa'][0]:.2f} | {1000 * results['triton'][0]:.2f} | "
              f"{flops / results['sdpa'][0] / 1e12:.1f} | {flops / results['triton'][0] / 1e12:.1f} | "
              f"{results['sdpa'][0] / results['triton'][0]:.2f} | {results['sdpa'][1] / 2**20:.1f} | "
              f"{results['triton'][1] / 2**20:.1f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per backend and length")
    parser.add_argument("--gpu-batch", type=int, default=8, help="batch of the GPU table (with 16 heads)")
    parser.add_argument("--gpu-only", action="store_true", help="skip the CPU table")
    parser.add_argument("--gpu-lengths", type=int, nargs="+", default=[512, 1024, 2048, 4096, 8192, 16384])
    args = parser.parse_args()
    if not args.gpu_only:
        cpu_table(args.lengths, args.batch, args.heads, args.head_dim, args.repeats)
    if torch.cuda.is_available():
        gpu_table(args.gpu_lengths, args.gpu_batch, 16, args.head_dim, 10 * args.repeats)


if __name__ == "__main__":
    main()
