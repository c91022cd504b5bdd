"""Matrix-multiply throughput of this machine in float32, bfloat16 and float16, in one run, as ratios to float32:
whether 16-bit arithmetic helps or hurts here (on CPUs it depends on the processor; on GPUs it is the point).

    python benchmarks/matmul_precision.py [--sizes 256 1024 2048] [--threads 2] [--device cpu|cuda]
"""
import argparse
import statistics
import time

import torch

DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def seconds_per_matmul(size: int, dtype: torch.dtype, device: str, repeats: int) -> float:
    a = torch.randn(size, size, device=device).to(dtype)
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ a
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 2048])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.device}, {args.threads} threads: GFLOP/s of an n x n matmul (2 n^3 FLOPs), and the ratio to "
          f"float32\n")
    names = [str(dtype).removeprefix("torch.") for dtype in DTYPES]
    print("| n | " + " | ".join(names) + " | bfloat16 / float32 | float16 / float32 |")
    print("| --- " * (len(DTYPES) + 3) + "|")
    for size in args.sizes:
        rates = {d: 2 * size**3 / seconds_per_matmul(size, d, args.device, args.repeats) / 1e9 for d in DTYPES}
        ratios = rates[torch.bfloat16] / rates[torch.float32], rates[torch.float16] / rates[torch.float32]
        print(f"| {size} | " + " | ".join(f"{rates[d]:.1f}" for d in DTYPES) + f" | {ratios[0]:.2f} | {ratios[1]:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
