"""What sampling the DiT paper's DiT-XL/2 at 256 x 256 costs, in minisora's modules, on this machine's CPU or a GPU:
the model `sample-imagenet` builds from `DiT-XL-2-256x256.pt` and Stable Diffusion's VAE, here with random weights
(the arithmetic is the same; no file is downloaded).

    python benchmarks/dit_xl_sampling.py [--images 2] [--steps 25] [--sampler dpmpp_2m] [--threads 2]
    python benchmarks/dit_xl_sampling.py --device cuda --precision bf16 --images 8 \
        [--steps 250 --sampler ddpm_learned_variance]

It times one guided denoiser call (the conditional and null halves as one batch), one decode, and a whole
`pretrained.sample_classes` run, beside a square matmul in the same precision timed in the same run (1024^3 on the
CPU, 8192^3 on a GPU); FLOPs of one forward pass are counted by PyTorch's FlopCounterMode (multiply-adds x 2).
"""
import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from minisora.models.dit import DiTConfig, DiT, count_parameters, dit_config
from minisora.models.image_vae import ImageVAE, ImageVAEConfig
from minisora.pretrained import dit_denoiser, sample_classes
from minisora.train.precision import PRECISIONS


def seconds(function, device: torch.device, repeats: int = 1) -> float:
    """Wall time of `function`, the GPU's queued work included."""
    function()  # warm-up: cuBLAS handles, allocator, first-call overheads
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2, help="images sampled (one class each)")
    parser.add_argument("--steps", type=int, default=25, help="sampler steps")
    parser.add_argument("--sampler", default="dpmpp_2m", help="dpmpp_2m (one call a step), ddpm_learned_variance "
                                                              "(the paper's, with --steps 250), ...")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=sorted(PRECISIONS), help="the DiT's autocast")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device, dtype = torch.device(args.device), PRECISIONS[args.precision]
    config: DiTConfig = dit_config("DiT-XL/2", input_size=32, class_dropout=0.0, position_layout="mae")
    dit, vae = DiT(config).eval().to(device), ImageVAE(ImageVAEConfig()).eval().to(device)
    labels = torch.arange(args.images, device=device)
    x = torch.randn(2 * args.images, 4, 1, 32, 32, device=device)
    side = 8192 if device.type == "cuda" else 1024
    matmul_a, matmul_b = (torch.randn(side, side, device=device, dtype=dtype or torch.float32) for _ in range(2))
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            dit(x[:1], torch.tensor([500.0], device=device), labels[:1])
        dit_gflops = counter.get_total_flops() / 1e9
        with FlopCounterMode(display=False) as counter:
            vae.decode(torch.randn(1, 4, 32, 32, device=device))
        vae_gflops = counter.get_total_flops() / 1e9
        denoiser = dit_denoiser(dit).to(device)
        both = torch.cat([labels, torch.full_like(labels, config.num_classes)])
        with autocast:
            call = seconds(lambda: denoiser(x, torch.full((len(x),), 2.0, device=device), label=both), device)
        decode = seconds(lambda: vae.decode(torch.randn(args.images, 4, 32, 32, device=device)), device)
        matmul_rate = 2 * side**3 / seconds(lambda: matmul_a @ matmul_b, device, 4) / 1e9
        start = time.perf_counter()
        sample_classes(dit, vae, labels.tolist(), steps=args.steps, sampler=args.sampler, precision=args.precision)
        whole = time.perf_counter() - start  # sample_classes returns CPU tensors: the GPU's work is done
    where = (torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads")
    print(f"DiT-XL/2 at 256 x 256 (latents 4 x 32 x 32): {count_parameters(dit) / 1e6:.1f} M parameters, "
          f"{dit_gflops:.1f} GFLOP a forward pass; Stable Diffusion's VAE: {count_parameters(vae) / 1e6:.1f} M, "
          f"{vae_gflops:.1f} GFLOP a decode; torch {torch.__version__}, {where}, the DiT in {args.precision}; a "
          f"{side}^3 {args.precision} matmul at {matmul_rate:.0f} GFLOP/s\n")
    print("| what | seconds | GFLOP/s (of the matmul rate) |")
    print("| --- | --- | --- |")
    print(f"| one guided step ({args.images} images: {2 * args.images} forward passes) | {call:.3f} | "
          f"{2 * args.images * dit_gflops / call:.0f} ({2 * args.images * dit_gflops / call / matmul_rate:.0%}) |")
    print(f"| decoding {args.images} images (float32) | {decode:.3f} | {args.images * vae_gflops / decode:.0f} |")
    print(f"| `sample_classes`: {args.images} images, {args.steps} {args.sampler} steps, guidance 4 | {whole:.1f} "
          f"({whole / args.images:.2f} an image) | |")


if __name__ == "__main__":
    main()
