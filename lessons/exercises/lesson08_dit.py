"""Lesson 08 exercises: DiT (Peebles & Xie 2023). Check with `pytest -m lesson08 --impl=exercises` (one exercise:
add `-k NAME`). Hints: lessons/hints/lesson08.md; worked solutions: lessons/solutions/lesson08_dit.py.

Tokens are (B, N, D): B samples of N tokens of width D; a conditioning vector c is (B, D), one per sample.
"""
from typing import Callable, Optional

import torch

from minisora.models.dit import DiTBlock, DiTConfig

REFERENCE_MODULES = ("minisora.models.dit", "minisora.models.embeddings", "minisora.diffusion.samplers")


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Lesson 08, exercise 1 (section 1; Section 3.2): adaptive layer norm's affine part on tokens x (B, N, D): LayerNorm's
    gain and bias made per sample from shift and scale (B, D), the gain written around 1 (so that a zero modulation
    leaves the tokens as they are), the same for every token of a sample."""
    raise NotImplementedError("Lesson 08: adaLN's modulation, Section 3.2 of Peebles & Xie 2023")


def adaln_zero_block(block: DiTBlock, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Lesson 08, exercise 2 (section 2; Section 3.2 and Figure 3): the forward pass of one adaLN-Zero block on tokens
    x (B, N, D), conditioned on c (B, D). Return the updated tokens (B, N, D).

    Use the block's own parts: `block.modulation` (SiLU then Linear, D -> 6D) regresses six (B, D) vectors from c,
    in this order: shift, scale and gate for the attention sublayer, then shift, scale and gate for the MLP
    sublayer; `block.norm1`, `block.norm2` (LayerNorms without their own scale and shift), `block.attention` and
    `block.mlp` (each (B, N, D) -> (B, N, D)). Each sublayer reads its LayerNorm's output modulated by its shift and
    scale (your `modulate`), and its output enters the residual stream multiplied by its gate, every token of a
    sample alike. The MLP sublayer reads the tokens as the attention sublayer left them. With both gates zero the
    block gives back x unchanged."""
    raise NotImplementedError("Lesson 08: a DiT block with adaLN-Zero, Section 3.2 of Peebles & Xie 2023")


def analytic_gflops(config: DiTConfig) -> float:
    """Lesson 08, exercise 3 (section 6; Table 1): forward GFLOPs of one sample, one multiply-add = one FLOP,
    counted by hand for every config.conditioning (patch embedding, blocks incl. attention scores and modulation,
    noise MLP, final layer)."""
    raise NotImplementedError("Lesson 08: count a DiT's multiply-adds (Table 1 and Figure 5 of Peebles & Xie 2023)")


def mae_position_embedding(height: int, width: int, dim: int) -> torch.Tensor:
    """Lesson 08, exercise 4 (section 10): the fixed position table of the paper's code (MAE's
    get_2d_sincos_pos_embed), the one its released weights were trained with: (height * width, dim), tokens in
    row-major order; for the token at row h, column w, the first dim / 4 channels are sin(w omega_k), the next
    dim / 4 cos(w omega_k), then sin(h omega_k) and cos(h omega_k), with omega_k = 10000^(-k / (dim / 4)). A dim
    that is not a multiple of 4 is a ValueError."""
    raise NotImplementedError("Lesson 08, section 10: MAE's 2D sin-cos table, column first, [sin, cos] per axis")


def sample_ddpm_learned_variance(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *,
                                 cond: Optional[dict] = None, callback: Optional[Callable] = None,
                                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Lesson 08, exercise 5 (sections 8 and 10): DiT's own sampler in sigma space.
    `denoiser.with_variance(x, sigma, **cond)` gives (x_0 estimate, v); each step from sigma_i to sigma_{i+1} goes
    to the mean of DDPM's posterior (the ancestral step with eta = 1 without its noise: `samplers.ancestral_step`)
    and adds noise of the learned variance: Nichol & Dhariwal's interpolation between beta and beta~ (their Eq. 15,
    section 8: in log space, the network's v in [-1, 1] mapped to the weight of beta), with alpha_bar =
    1 / (1 + sigma^2), beta = 1 - alpha_bar_i / alpha_bar_{i+1},
    beta~ = (1 - alpha_bar_{i+1}) / (1 - alpha_bar_i) beta, scaled by 1 / sqrt(alpha_bar_{i+1}) into x's coordinates
    (noise from `minisora.randomness.randn` with the generator); the step into sigma = 0 returns the estimate
    itself."""
    raise NotImplementedError("Lesson 08: the learned-variance ancestral step (Nichol & Dhariwal 2021, Eq. 15)")
