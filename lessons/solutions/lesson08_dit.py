"""Lesson 08 worked solutions: DiT (Peebles & Xie 2023). Try the exercises in lessons/exercises/lesson08_dit.py
first; these pass the same checks: `pytest -m lesson08 --impl=solutions`.

Notation: tokens x (B, N, D), conditioning c = e(t) + e(y) (B, D); the paper's adaLN writes the regressed scale as
gamma, the shift as beta and the gate as alpha.
"""
import math
from typing import Callable, Optional

import torch

from minisora.diffusion.samplers import ancestral_step
from minisora.models.dit import DiTBlock, DiTConfig
from minisora.randomness import randn

REFERENCE_MODULES = ("minisora.models.dit", "minisora.models.embeddings", "minisora.diffusion.samplers")


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Lesson 08, exercise 1 (section 1; Section 3.2): adaptive layer norm's affine part on tokens x (B, N, D) with
    shift and scale (B, D): x (1 + scale) + shift, the same for every token of a sample."""
    # one (shift, scale) per sample: (B, D) -> (B, 1, D) broadcasts over the N tokens of that sample
    shift, scale = shift[:, None, :], scale[:, None, :]
    # adaLN(h) = LN(h) (1 + gamma(c)) + beta(c): "1 +" so that gamma = 0 leaves the normalised tokens as they are
    return x * (1 + scale) + shift


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
    # the regression from c: one Linear of SiLU(c) gives all six vectors at once, (B, 6D) -> six (B, D)
    shift_attention, scale_attention, gate_attention, shift_mlp, scale_mlp, gate_mlp = block.modulation(c).chunk(6, dim=1)

    # x <- x + alpha_1 Attn(LN(x) (1 + gamma_1) + beta_1)
    attention_input = modulate(block.norm1(x), shift_attention, scale_attention)  # (B, N, D)
    x = x + gate_attention[:, None, :] * block.attention(attention_input)  # the gate scales each channel, every token alike

    # x <- x + alpha_2 MLP(LN(x) (1 + gamma_2) + beta_2), on the x just updated: the sublayers run one after the other
    mlp_input = modulate(block.norm2(x), shift_mlp, scale_mlp)  # (B, N, D)
    return x + gate_mlp[:, None, :] * block.mlp(mlp_input)
    # alpha_1 = alpha_2 = 0 gives x + 0 + 0 = x: the block is the identity, whatever the shifts and scales are


def analytic_gflops(config: DiTConfig) -> float:
    """Lesson 08, exercise 3 (section 6; Table 1): forward GFLOPs of one sample, one multiply-add = one FLOP,
    counted by hand for every config.conditioning (patch embedding, blocks incl. attention scores and modulation,
    noise MLP, final layer)."""
    # A Linear from a to b on n rows costs n a b multiply-adds; elementwise work (norms, activations, softmax,
    # gating) is not counted, as in the paper's Table 1.
    D = config.hidden
    mlp_width = int(config.hidden * config.mlp_ratio)
    values_per_patch = config.temporal_patch * config.patch_size**2  # per channel
    # N = (T / pt) (H / p) (W / p) patch tokens; M = 1 or 2 conditioning tokens (noise level, class)
    N = (config.frames // config.temporal_patch) * (config.input_size // config.patch_size) ** 2
    M = 2 if config.num_classes else 1
    # in-context conditioning appends the M condition tokens to the sequence every block sees
    n = N + M if config.conditioning == "in_context" else N

    projections = 4 * n * D * D  # Q, K, V and the output projection: four D x D maps on n tokens
    scores = n * n * D  # Q K^T: n x n scores, each a dot product of length D (summed over the heads)
    weighted_values = n * n * D  # P V: n outputs of width D, each a sum over n tokens
    mlp = n * D * mlp_width + n * mlp_width * D  # D -> 4D -> D
    block = projections + scores + weighted_values + mlp
    if config.conditioning == "adaln_zero":
        block += D * 6 * D  # Linear(SiLU(c)): six vectors, once per sample (not per token)
    elif config.conditioning == "adaln":
        block += D * 4 * D  # shift and scale only
    elif config.conditioning == "cross_attention":
        # queries and output projection on the N tokens, keys and values on the M conditions, N x M scores and sums
        block += 2 * N * D * D + 2 * M * D * D + 2 * N * M * D

    patch_embedding = N * (config.in_channels * values_per_patch) * D
    noise_mlp = 256 * D + D * D  # 256 sinusoidal frequencies -> D -> D
    final_layer = D * 2 * D + N * D * (values_per_patch * config.out_channels)  # its adaLN, then tokens -> patches
    total = config.depth * block + patch_embedding + noise_mlp + final_layer
    return total / 1e9


def mae_position_embedding(height: int, width: int, dim: int) -> torch.Tensor:
    """Lesson 08, exercise 4 (section 10): the fixed position table of the paper's code (MAE's
    get_2d_sincos_pos_embed), the one its released weights were trained with: (height * width, dim), tokens in
    row-major order; for the token at row h, column w, the first dim / 4 channels are sin(w omega_k), the next
    dim / 4 cos(w omega_k), then sin(h omega_k) and cos(h omega_k), with omega_k = 10000^(-k / (dim / 4)). A dim
    that is not a multiple of 4 is a ValueError."""
    if dim % 4:
        raise ValueError(f"the table splits dim into four equal parts (sin, cos for each axis): dim must be a multiple "
                         f"of 4, got {dim}")
    quarter = dim // 4
    # omega_k = 10000^(-k / quarter), k = 0 .. quarter - 1 (float64, then float32 like the paper's numpy table)
    omega = torch.exp(-math.log(10000.0) * torch.arange(quarter, dtype=torch.float64) / quarter)
    # row-major order: token index = h * width + w
    rows = torch.arange(height, dtype=torch.float64).repeat_interleave(width)  # h of each token
    columns = torch.arange(width, dtype=torch.float64).repeat(height)  # w of each token
    column_angles = columns[:, None] * omega[None]  # (N, quarter)
    row_angles = rows[:, None] * omega[None]
    # MAE's meshgrid puts the column first, and each axis is [sin, cos]
    table = torch.cat([column_angles.sin(), column_angles.cos(), row_angles.sin(), row_angles.cos()], dim=1)
    return table.float()


@torch.no_grad()
def sample_ddpm_learned_variance(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *,
                                 cond: Optional[dict] = None, callback: Optional[Callable] = None,
                                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Lesson 08, exercise 5 (sections 8 and 10): DiT's own sampler in sigma space.
    `denoiser.with_variance(x, sigma, **cond)` gives (x_0 estimate, v); each step from sigma_i to sigma_{i+1} goes
    to the mean of DDPM's posterior (the ancestral step with eta = 1 without its noise: `samplers.ancestral_step`)
    and adds noise of the learned variance log Sigma = (v + 1) / 2 log beta + (1 - (v + 1) / 2) log beta~ (Nichol &
    Dhariwal Eq. 15), with alpha_bar = 1 / (1 + sigma^2), beta = 1 - alpha_bar_i / alpha_bar_{i+1},
    beta~ = (1 - alpha_bar_{i+1}) / (1 - alpha_bar_i) beta, scaled by 1 / sqrt(alpha_bar_{i+1}) into x's coordinates
    (noise from `minisora.randomness.randn` with the generator); the step into sigma = 0 returns the estimate
    itself."""
    cond = cond or {}
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        sigma_batch = sigma.to(x.dtype).expand(x.shape[0])  # (B,)
        denoised, variance_output = denoiser.with_variance(x, sigma_batch, **cond)
        # DDPM's posterior mean mu~(x_t, x_0) is the eta = 1 step without its noise: an Euler step to sigma_down
        sigma_down, _ = ancestral_step(sigma, sigma_next)
        derivative = (x - denoised) / sigma.to(x.dtype)  # dx/dsigma of the probability-flow ODE
        x = x + (sigma_down - sigma).to(x.dtype) * derivative
        if sigma_next > 0:
            # the chain's own alphas: x = x_t / sqrt(alpha_bar_t) with alpha_bar = 1 / (1 + sigma^2)
            alpha_bar, alpha_bar_next = 1 / (1 + sigma**2), 1 / (1 + sigma_next**2)
            beta = 1 - alpha_bar / alpha_bar_next  # this step's beta_t
            beta_tilde = (1 - alpha_bar_next) / (1 - alpha_bar) * beta  # the posterior's variance
            # Eq. 15: log Sigma = v' log beta + (1 - v') log beta~, with the network's v in [-1, 1] mapped to v' in [0, 1]
            weight = (variance_output + 1) / 2
            log_variance = weight * beta.log().to(x.dtype) + (1 - weight) * beta_tilde.log().to(x.dtype)
            # x_{t-1} = mu~ + Sigma^(1/2) z, and x's coordinates divide by sqrt(alpha_bar_{t-1})
            noise = randn(x.shape, generator, x.device, x.dtype)
            x = x + (log_variance / 2).exp() / alpha_bar_next.sqrt().to(x.dtype) * noise
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigma, "denoised": denoised})
    return x
