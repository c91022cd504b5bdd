"""Lesson 08 exercises: DiT (Peebles & Xie 2023). Check with `pytest -m lesson08 --impl=exercises`."""
import torch

from minisora.models.dit import DiTConfig

REFERENCE_MODULES = ("minisora.models.dit",)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Lesson 08, Section 3.2: adaptive layer norm's affine part on tokens x (B, N, D) with shift and scale (B, D):
    x (1 + scale) + shift, the same for every token of a sample."""
    raise NotImplementedError("Lesson 08: adaLN's modulation, Section 3.2 of Peebles & Xie 2023")


def analytic_gflops(config: DiTConfig) -> float:
    """Lesson 08, Table 1: forward GFLOPs of one sample, one multiply-add = one FLOP, counted by hand for every
    config.conditioning (patch embedding, blocks incl. attention scores and modulation, noise MLP, final layer)."""
    raise NotImplementedError("Lesson 08: count a DiT's multiply-adds (Table 1 and Figure 5 of Peebles & Xie 2023)")
