"""Lesson 09 exercises: interpolants and flow matching (SiT, Lipman et al. 2023, Liu et al. 2023). Check with
`pytest -m lesson09 --impl=exercises`."""
from typing import Callable, Optional

import torch

from minisora.diffusion.flow import DATA_PREDICTION_MIN_SIGMA, Path
from minisora.parallel.batch import BatchShard

REFERENCE_MODULES = ("minisora.diffusion.flow",)


def flow_target(path: Path, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, prediction: str) -> torch.Tensor:
    """Lesson 09, SiT Section 2.2: the regression target for x_t = alpha_t x0 + sigma_t eps at times t (B,):
    "velocity" u_t = alpha'_t x0 + sigma'_t eps, "noise" eps, or "score" -eps / sigma_t (path.alpha, path.d_alpha,
    path.sigma, path.d_sigma give the coefficients)."""
    raise NotImplementedError("Lesson 09: the velocity, noise and score targets of SiT")


def x0_from_prediction(path: Path, x_t: torch.Tensor, t: torch.Tensor, output: torch.Tensor,
                       prediction: str) -> torch.Tensor:
    """Lesson 09: x0 from a "velocity", "noise" or "score" prediction at (x_t, t) (for the velocity, solve the two
    linear equations x_t = alpha x0 + sigma eps and u = alpha' x0 + sigma' eps for x0)."""
    raise NotImplementedError("Lesson 09: convert any prediction into the denoised x0")


def sample_times(batch_size: int, distribution: str = "uniform", shift: float = 1.0,
                 generator: Optional[torch.Generator] = None, device=None,
                 unshifted_share: float = 0.0, max_time: float = 1.0) -> torch.Tensor:
    """Lesson 09: training times: "uniform" on (0, 1) or "logit_normal" (sigmoid of a standard normal), then shifted,
    t -> shift t / (1 + (shift - 1) t) (Esser et al. 2024), and clamped to [1e-5, 1 - 1e-5]. (Optional: a random
    share `unshifted_share` of the draws keeps its unshifted time, and every time is scaled by `max_time` before the
    clamp; the tests leave them at 0 and 1.)"""
    raise NotImplementedError("Lesson 09: uniform, logit-normal and shifted training times")


def flow_matching_loss(model: Callable, x0: torch.Tensor, path: Path, prediction: str = "velocity",
                       time_distribution: str = "uniform", shift: float = 1.0,
                       generator: Optional[torch.Generator] = None, unshifted_share: float = 0.0,
                       data_min_sigma: float = DATA_PREDICTION_MIN_SIGMA, max_time: float = 1.0,
                       loss_mask: Optional[torch.Tensor] = None, shard: Optional[BatchShard] = None,
                       **cond) -> torch.Tensor:
    """Lesson 09, Lipman et al. 2023 Eq. 9: mean of || model(x_t, t, **cond) - target ||^2 over t from sample_times
    and eps ~ N(0, I) (draw t first, then eps, with the generator), weighted by sigma_t^2 for the score (the lesson's
    checks leave loss_mask and shard None: the mean over every element, on one process)."""
    raise NotImplementedError("Lesson 09: the (conditional) flow matching loss")
