"""Tile sizes, warps and pipeline stages of the Triton attention kernels, timed one kernel at a time against torch's
SDPA on a CUDA GPU, in bfloat16 (needs a GPU; the defaults in minisora/kernels/triton_attention.py come from here).

    python benchmarks/attention_kernel_tuning.py [--length 4096] [--batch 8] [--heads 16] [--head-dim 64]

For each candidate it checks the result against SDPA's on the same inputs (relative error below 2e-2, every element
finite) before timing it, so a fast wrong configuration cannot win. Times are medians from
`triton.testing.do_bench` (CUDA events, after warm-up). FLOPs are FlashAttention's count: 4 N^2 d per (batch, head)
forward, 2.5 times that backward (Dao 2023).
"""
import argparse
import itertools

import torch

from minisora.kernels.triton_attention import (BACKWARD_KEYS_TILES, BACKWARD_QUERIES_TILES, FORWARD_TILES, Tiles,
                                               flash_backward, flash_forward)

FORWARD_BLOCKS = [(64, 64), (128, 32), (128, 64), (128, 128)]  # (queries, keys)
KEYS_BLOCKS = [(16, 128), (32, 64), (32, 128), (64, 64), (64, 128)]
QUERIES_BLOCKS = [(64, 32), (64, 64), (128, 16), (128, 32), (128, 64)]
WARPS = (4, 8)
FORWARD_STAGES, BACKWARD_STAGES = (2, 3, 4), (2, 3)


def relative_error(result: torch.Tensor, reference: torch.Tensor) -> float:
    if not torch.isfinite(result).all():
        return float("inf")
    return float((result.float() - reference.float()).norm() / reference.float().norm())


def candidates(blocks, stages_list):
    return [Tiles(queries, keys, warps, stages) for (queries, keys), warps, stages in
            itertools.product(blocks, WARPS, stages_list)]


def describe(tiles: Tiles) -> str:
    return f"{tiles.queries} x {tiles.keys}, {tiles.warps} warps, {tiles.stages} stages"


def sweep(name, tiles_list, run, check, flops, sdpa_ms, default):
    """Time every candidate that computes the right answer; print the table; return the fastest."""
    from triton.testing import do_bench

    print(f"\n{name}: SDPA {sdpa_ms:.3f} ms = {flops / sdpa_ms / 1e9:.0f} TFLOP/s\n")
    print("| tiles (queries x keys), warps, stages | ms | TFLOP/s | / SDPA speed | error vs SDPA |")
    print("| --- | --- | --- | --- | --- |")
    results = []
    for tiles in tiles_list:
        try:
            run(tiles)
            torch.cuda.synchronize()
            error = check()
            if error > 2e-2:
                print(f"| {describe(tiles)} | wrong | | | {error:.2e} |")
                continue
            milliseconds = do_bench(lambda: run(tiles), warmup=25, rep=100, return_mode="median")
        except Exception as failure:  # out of shared memory or registers for this tile size
            print(f"| {describe(tiles)} | fails: {type(failure).__name__} | | | |")
            continue
        results.append((milliseconds, tiles))
        marker = " (default)" if tiles == default else ""
        print(f"| {describe(tiles)}{marker} | {milliseconds:.3f} | {flops / milliseconds / 1e9:.0f} | "
              f"{sdpa_ms / milliseconds:.2f} | {error:.1e} |", flush=True)
    best_ms, best = min(results, key=lambda result: result[0])
    print(f"\nfastest {name}: {best} at {best_ms:.3f} ms ({flops / best_ms / 1e9:.0f} TFLOP/s, "
          f"{sdpa_ms / best_ms:.2f} of SDPA's speed)")
    return best


def main():
    from triton.testing import do_bench

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--head-dim", type=int, default=64)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU (Triton compiles for GPUs only)")
    generator = torch.Generator(device="cuda").manual_seed(0)
    shape = (args.batch, args.heads, args.length, args.head_dim)
    q, k, v, grad_out = (torch.randn(shape, generator=generator, device="cuda", dtype=torch.bfloat16)
                         for _ in range(4))
    forward_flops = 4 * args.batch * args.heads * args.length ** 2 * args.head_dim
    print(f"{torch.cuda.get_device_name()}, bfloat16, B={args.batch}, heads={args.heads}, N={args.length}, "
          f"d={args.head_dim}; torch {torch.__version__}")

    # SDPA's forward, and its backward alone (the forward's graph kept, gradients of q, k, v)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    reference_out = sdpa(q, k, v)
    sdpa_forward_ms = do_bench(lambda: sdpa(q, k, v), warmup=25, rep=100, return_mode="median")
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    graph_out = sdpa(*leaves)
    reference_grads = torch.autograd.grad(graph_out, leaves, grad_out, retain_graph=True)
    sdpa_backward_ms = do_bench(lambda: torch.autograd.grad(graph_out, leaves, grad_out, retain_graph=True),
                                warmup=25, rep=100, return_mode="median")

    out = torch.empty_like(q)
    logsumexp = torch.empty(shape[:-1], device="cuda", dtype=torch.float32)
    best_forward = sweep("forward", candidates(FORWARD_BLOCKS, FORWARD_STAGES),
                         lambda tiles: flash_forward(q, k, v, None, out, logsumexp, tiles),
                         lambda: relative_error(out, reference_out), forward_flops, sdpa_forward_ms, FORWARD_TILES)
    flash_forward(q, k, v, None, out, logsumexp, best_forward)
    grads = [torch.empty_like(t) for t in (q, k, v)]

    def grads_error():
        return max(relative_error(grad, reference) for grad, reference in zip(grads, reference_grads))

    best_keys = sweep("backward, keys kernel (dK, dV; with the default queries kernel)", candidates(KEYS_BLOCKS, BACKWARD_STAGES),
                      lambda tiles: flash_backward(q, k, v, None, out, grad_out, logsumexp, *grads, tiles,
                                                   BACKWARD_QUERIES_TILES),
                      grads_error, 2.5 * forward_flops, sdpa_backward_ms, BACKWARD_KEYS_TILES)
    best_queries = sweep("backward, queries kernel (dQ; with the fastest keys kernel)", candidates(QUERIES_BLOCKS, BACKWARD_STAGES),
                         lambda tiles: flash_backward(q, k, v, None, out, grad_out, logsumexp, *grads, best_keys,
                                                      tiles),
                         grads_error, 2.5 * forward_flops, sdpa_backward_ms, BACKWARD_QUERIES_TILES)
    forward_ms = do_bench(lambda: flash_forward(q, k, v, None, out, logsumexp, best_forward), warmup=25, rep=100,
                          return_mode="median")
    backward_ms = do_bench(lambda: flash_backward(q, k, v, None, out, grad_out, logsumexp, *grads, best_keys,
                                                  best_queries), warmup=25, rep=100, return_mode="median")
    total, sdpa_total = forward_ms + backward_ms, sdpa_forward_ms + sdpa_backward_ms
    print(f"\nfastest tiles together: forward {forward_ms:.3f} ms + backward {backward_ms:.3f} ms = {total:.3f} ms, "
          f"{3.5 * forward_flops / total / 1e9:.0f} TFLOP/s; SDPA {sdpa_total:.3f} ms, "
          f"{3.5 * forward_flops / sdpa_total / 1e9:.0f} TFLOP/s; speed / SDPA's = {sdpa_total / total:.2f}")
    print(f"FORWARD_TILES = {best_forward}\nBACKWARD_KEYS_TILES = {best_keys}\nBACKWARD_QUERIES_TILES = {best_queries}")


if __name__ == "__main__":
    main()
