"""Lesson 08 exercises: DiT (Peebles & Xie 2023). Check with `pytest -m lesson08 --impl=exercises`."""
from typing import Callable, Optional

import torch

from minisora.models.dit import DiTConfig

REFERENCE_MODULES = ("minisora.models.dit", "minisora.models.embeddings", "minisora.diffusion.samplers")


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Lesson 08, Section 3.2: adaptive layer norm's affine part on tokens x (B, N, D) with shift and scale (B, D):
    x (1 + scale) + shift, the same for every token of a sample."""
    raise NotImplementedError("Lesson 08: adaLN's modulation, Section 3.2 of Peebles & Xie 2023")


def analytic_gflops(config: DiTConfig) -> float:
    """Lesson 08, Table 1: forward GFLOPs of one sample, one multiply-add = one FLOP, counted by hand for every
    config.conditioning (patch embedding, blocks incl. attention scores and modulation, noise MLP, final layer)."""
    raise NotImplementedError("Lesson 08: count a DiT's multiply-adds (Table 1 and Figure 5 of Peebles & Xie 2023)")


def mae_position_embedding(height: int, width: int, dim: int) -> torch.Tensor:
    """Lesson 08, section 6: the fixed position table of the paper's code (MAE's get_2d_sincos_pos_embed), the one its
    released weights were trained with: (height * width, dim), tokens in row-major order; for the token at row h,
    column w, the first dim / 4 channels are sin(w omega_k), the next dim / 4 cos(w omega_k), then sin(h omega_k)
    and cos(h omega_k), with omega_k = 10000^(-k / (dim / 4)). A dim that is not a multiple of 4 is a ValueError."""
    raise NotImplementedError("Lesson 08, section 6: MAE's 2D sin-cos table, column first, [sin, cos] per axis")


def sample_ddpm_learned_variance(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *,
                                 cond: Optional[dict] = None, callback: Optional[Callable] = None,
                                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Lesson 08, sections 4 and 6: DiT's own sampler in sigma space. `denoiser.with_variance(x, sigma, **cond)`
    gives (x_0 estimate, v); each step from sigma_i to sigma_{i+1} goes to the mean of DDPM's posterior (the
    ancestral step with eta = 1 without its noise: `samplers.ancestral_step`) and adds noise of the learned variance
    log Sigma = (v + 1) / 2 log beta + (1 - (v + 1) / 2) log beta~ (Nichol & Dhariwal Eq. 15), with
    alpha_bar = 1 / (1 + sigma^2), beta = 1 - alpha_bar_i / alpha_bar_{i+1}, beta~ = (1 - alpha_bar_{i+1}) /
    (1 - alpha_bar_i) beta, scaled by 1 / sqrt(alpha_bar_{i+1}) into x's coordinates (noise from
    `minisora.randomness.randn` with the generator); the step into sigma = 0 returns the estimate itself."""
    raise NotImplementedError("Lesson 08: the learned-variance ancestral step (Nichol & Dhariwal 2021, Eq. 15)")
