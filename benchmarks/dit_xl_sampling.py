"""What sampling the DiT paper's DiT-XL/2 at 256 x 256 costs on this machine's CPU, in minisora's modules: the
model `sample-imagenet` builds from `DiT-XL-2-256x256.pt` and Stable Diffusion's VAE, here with random weights (the
arithmetic is the same; no file is downloaded).

    python benchmarks/dit_xl_cpu_sampling.py [--images 2] [--steps 25] [--threads 2]

It times one guided denoiser call (the conditional and null halves as one batch), one decode, and a whole
`pretrained.sample_classes` run, beside a 1024^3 float32 matmul timed in the same run; FLOPs of one forward pass
are counted by PyTorch's FlopCounterMode (multiply-adds x 2).
"""
import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from minisora.models.dit import DiTConfig, DiT, count_parameters, dit_config
from minisora.models.image_vae import ImageVAE, ImageVAEConfig
from minisora.pretrained import dit_denoiser, sample_classes


def seconds(function, repeats: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2, help="images sampled (one class each)")
    parser.add_argument("--steps", type=int, default=25, help="sampler steps (dpmpp_2m: one call each)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config: DiTConfig = dit_config("DiT-XL/2", input_size=32, class_dropout=0.0, position_layout="mae")
    dit, vae = DiT(config).eval(), ImageVAE(ImageVAEConfig()).eval()
    labels = torch.arange(args.images)
    x = torch.randn(2 * args.images, 4, 1, 32, 32)
    matmul_a, matmul_b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            dit(x[:1], torch.tensor([500.0]), labels[:1])
        dit_gflops = counter.get_total_flops() / 1e9
        with FlopCounterMode(display=False) as counter:
            vae.decode(torch.randn(1, 4, 32, 32))
        vae_gflops = counter.get_total_flops() / 1e9
        denoiser = dit_denoiser(dit)
        both = torch.cat([labels, torch.full_like(labels, config.num_classes)])
        call = seconds(lambda: denoiser(x, torch.full((len(x),), 2.0), label=both))
        decode = seconds(lambda: vae.decode(torch.randn(args.images, 4, 32, 32)))
        matmul_rate = 2 * 1024**3 / seconds(lambda: matmul_a @ matmul_b, 4) / 1e9
        whole = seconds(lambda: sample_classes(dit, vae, labels.tolist(), steps=args.steps))
    print(f"DiT-XL/2 at 256 x 256 (latents 4 x 32 x 32): {count_parameters(dit) / 1e6:.1f} M parameters, "
          f"{dit_gflops:.1f} GFLOP a forward pass; Stable Diffusion's VAE: {count_parameters(vae) / 1e6:.1f} M, "
          f"{vae_gflops:.1f} GFLOP a decode; torch {torch.__version__}, {args.threads} threads; a 1024^3 float32 "
          f"matmul at {matmul_rate:.0f} GFLOP/s\n")
    print("| what | seconds | GFLOP/s (of the matmul rate) |")
    print("| --- | --- | --- |")
    print(f"| one guided step ({args.images} images: {2 * args.images} forward passes) | {call:.2f} | "
          f"{2 * args.images * dit_gflops / call:.0f} ({2 * args.images * dit_gflops / call / matmul_rate:.0%}) |")
    print(f"| decoding {args.images} images | {decode:.2f} | {args.images * vae_gflops / decode:.0f} "
          f"({args.images * vae_gflops / decode / matmul_rate:.0%}) |")
    print(f"| `sample_classes`: {args.images} images, {args.steps} dpmpp_2m steps, guidance 4 | {whole:.1f} | |")


if __name__ == "__main__":
    main()
