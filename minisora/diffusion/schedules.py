"""Noise schedules: DDPM's betas, EDM's sigmas, and the conversions between them.

The papers name the noise level of x_t three ways. They are the same number in three coordinates:

    alpha_bar_t   (Ho et al. 2020, DDPM)     x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps
    sigma         (Karras et al. 2022, EDM)  x   = x_0 + sigma eps,   with x = x_t / sqrt(alpha_bar_t)
    lambda        (Kingma et al. 2021)       lambda = log SNR = log(alpha_bar / (1 - alpha_bar)) = -2 log sigma

Every sampler in `samplers.py` works in the sigma coordinates; DDPM and DDIM are written in their own.
Schedules are computed in float64: 1 - alpha_bar underflows in float32 at the clean end.
"""
import math
from typing import Optional

import torch

from ..parallel.batch import BatchShard, shard_mean


def append_dims(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1), to broadcast per-sample scalars against `like` (B, ...)."""
    return values.reshape(-1, *([1] * (like.dim() - 1)))


def masked_mean(values: torch.Tensor, mask: Optional[torch.Tensor] = None,
                shard: Optional[BatchShard] = None) -> torch.Tensor:
    """The mean of `values` over the elements where `mask` (broadcastable to them) is not 0; all of them without a
    mask. A loss over the generated frames alone, given frames left out. With a `shard`, `values` are this process's
    rows of the batch and `mask` the whole batch's: its part of the whole mean (`parallel.batch.shard_mean`)."""
    if shard is not None:
        return shard_mean(values, mask, shard)
    if mask is None:
        return values.mean()
    mask = mask.to(values.dtype).expand_as(values)
    return (values * mask).sum() / mask.sum().clamp(min=1)


def linear_betas(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """The linear beta schedule of Ho et al. 2020 (Section 4): beta_1 = 1e-4 to beta_T = 0.02, T = 1000."""
    _check_num_steps(num_steps)
    return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)  # (T,)


def cosine_betas(num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """The cosine schedule of Nichol & Dhariwal 2021 (Eq. 17), betas clipped at 0.999."""
    _check_num_steps(num_steps)
    t = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    # f(t) = cos^2( (t/T + s) / (1 + s) * pi/2 ),  alpha_bar_t = f(t) / f(0)
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    # beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}
    betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(max=max_beta)  # (T,)


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t = prod_{s<=t} (1 - beta_s), Ho et al. 2020 (notation above Eq. 4)."""
    return torch.cumprod(1 - betas.to(torch.float64), dim=0)


def sigma_from_alpha_bar(alpha_bar: torch.Tensor) -> torch.Tensor:
    """sigma = sqrt((1 - alpha_bar) / alpha_bar): the VP noise level in EDM's coordinates (Karras et al. Eq. 4)."""
    return ((1 - alpha_bar) / alpha_bar).sqrt()


def alpha_bar_from_sigma(sigma: torch.Tensor) -> torch.Tensor:
    """alpha_bar = 1 / (1 + sigma^2), the inverse of `sigma_from_alpha_bar`."""
    return 1 / (1 + sigma**2)


def log_snr_from_sigma(sigma: torch.Tensor) -> torch.Tensor:
    """lambda = log(alpha_bar / (1 - alpha_bar)) = -2 log sigma (Kingma et al. 2021)."""
    return -2 * torch.log(sigma)


def sigma_from_log_snr(log_snr: torch.Tensor) -> torch.Tensor:
    """sigma = exp(-lambda / 2), the inverse of `log_snr_from_sigma`."""
    return torch.exp(-log_snr / 2)


def karras_sigmas(num_steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """The sampling noise levels of Karras et al. 2022 (Eq. 5), with a final 0 appended: num_steps + 1 values."""
    _check_num_steps(num_steps)
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"karras_sigmas needs 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    i = torch.arange(num_steps, dtype=torch.float64)
    ramp = i / max(num_steps - 1, 1)
    # sigma_i = ( sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)) )^rho
    sigmas = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])  # (N + 1,), decreasing, ends at 0


def respace_timesteps(num_train_steps: int, num_steps: int, spacing: str = "trailing") -> torch.Tensor:
    """A subsequence of the training timesteps 0..T-1 for few-step sampling, in decreasing order.

    "leading" is DDIM's (Song et al. 2021, Section 4.2) range(0, T, T // S); "trailing" starts from the
    noisiest step T - 1 (Lin et al. 2024 show why it matters); "linspace" rounds an even grid over [0, T-1].
    """
    _check_num_steps(num_steps)
    if num_steps > num_train_steps:
        raise ValueError(f"cannot respace {num_train_steps} training steps into {num_steps}; use num_steps <= {num_train_steps}")
    if spacing == "leading":
        steps = torch.arange(num_steps) * (num_train_steps // num_steps)
    elif spacing == "trailing":
        steps = torch.round(torch.arange(num_train_steps, 0, -num_train_steps / num_steps)).long() - 1
    elif spacing == "linspace":
        steps = torch.linspace(0, num_train_steps - 1, num_steps).round().long()
    else:
        raise ValueError(f"unknown spacing {spacing!r}; choose 'leading', 'trailing' or 'linspace'")
    return steps.long().sort(descending=True).values  # (S,)


def respaced_betas(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """The betas of the shorter chain that visits only `timesteps` (Nichol & Dhariwal 2021, Section 4):
    beta_i = 1 - alpha_bar_{t_i} / alpha_bar_{t_{i-1}}. Returned in increasing-time order."""
    kept = alphas_cumprod[timesteps.sort().values]
    previous = torch.cat([kept.new_ones(1), kept[:-1]])
    return 1 - kept / previous


def sigmas_from_timesteps(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """The sigmas of decreasing DDPM `timesteps`, with a final 0 appended, ready for any sampler."""
    sigmas = sigma_from_alpha_bar(alphas_cumprod[timesteps])
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def timestep_from_sigma(alphas_cumprod: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The (fractional) DDPM timestep whose sigma is `sigma`, interpolating log sigma between steps.

    At a sigma of the schedule it returns that step's integer index exactly; this is how a network trained
    on discrete timesteps is queried at any sigma (EDM Table 1, VP column: c_noise = (M - 1) t).
    """
    log_sigmas = sigma_from_alpha_bar(alphas_cumprod).log()  # (T,) increasing
    log_sigma = sigma.to(log_sigmas.dtype).clamp(min=1e-30).log()
    index = torch.searchsorted(log_sigmas, log_sigma.contiguous()).clamp(1, len(log_sigmas) - 1)
    low, high = log_sigmas[index - 1], log_sigmas[index]
    fraction = ((log_sigma - low) / (high - low)).clamp(0, 1)
    return (index - 1 + fraction).to(sigma.dtype)


def sigma_from_timestep(alphas_cumprod: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The sigma of a (fractional) DDPM timestep: log sigma interpolated between steps, the inverse of
    `timestep_from_sigma`."""
    log_sigmas = sigma_from_alpha_bar(alphas_cumprod).log()  # (T,)
    t = t.to(log_sigmas.dtype).clamp(0, len(log_sigmas) - 1)
    low = t.floor().long().clamp(max=len(log_sigmas) - 2)
    fraction = t - low
    return torch.exp(torch.lerp(log_sigmas[low], log_sigmas[low + 1], fraction))


def _check_num_steps(num_steps: int) -> None:
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"the number of steps must be a positive integer, got {num_steps!r}")
