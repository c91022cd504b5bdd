"""The two training objectives a transformer trainer chooses between, behind one pair of functions: EDM (Karras et
al. 2022: denoise at log-normal noise levels with the preconditioned D(x, sigma)) and flow matching (SiT, Ma et al.
2024: the linear path's velocity at sampled times). Either way the trained model is a denoiser D(x, sigma, **cond),
so every sampler drives it."""
from typing import Optional

import torch
from torch import nn

from .denoisers import VPDenoiser
from .edm import EDMDenoiser, edm_loss
from .flow import DATA_PREDICTION_MIN_SIGMA, FlowDenoiser, Path as FlowPath, flow_matching_loss
from ..parallel.batch import BatchShard

OBJECTIVES = ("edm", "flow")
SIGMA_DATA = 0.5  # EDM's sigma_data for data in [-1, 1] (and for unit-variance latents it is near enough)
# networks embed the noise label like DDPM's timesteps 0..999: EDM's ln(sigma)/4 spans ~[-1.5, 1.1], flow t [0, 1]
NOISE_LABEL_SCALES = {"edm": 250.0, "flow": 1000.0}


def check_objective(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {OBJECTIVES}")
    return objective


def wrap_network(network: nn.Module, objective: str, prediction: str = "velocity") -> nn.Module:
    """The network behind the denoiser of its objective: EDMDenoiser, or FlowDenoiser on the linear path predicting
    `prediction` (flow.FLOW_PREDICTIONS: the velocity, or the data for large patches)."""
    if check_objective(objective) == "edm":
        return EDMDenoiser(network, sigma_data=SIGMA_DATA)
    return FlowDenoiser(network, FlowPath("linear"), prediction)


def around(denoiser: nn.Module, network: nn.Module) -> nn.Module:
    """The denoiser of `wrap_network` (or a VPDenoiser) around another network: the same network as the processes of
    a data parallel run train it (parallel/data_parallel.py), sharing its parameters."""
    if isinstance(denoiser, EDMDenoiser):
        return EDMDenoiser(network, sigma_data=denoiser.sigma_data)
    if isinstance(denoiser, VPDenoiser):
        return VPDenoiser(network, denoiser.alphas_cumprod, denoiser.prediction)
    return FlowDenoiser(network, denoiser.path, denoiser.prediction)


def network_of(denoiser: nn.Module) -> nn.Module:
    """The network inside a denoiser of `wrap_network` (or a VPDenoiser)."""
    return denoiser.net if isinstance(denoiser, EDMDenoiser) else denoiser.model


def objective_loss(denoiser: nn.Module, x0: torch.Tensor, objective: str, generator: Optional[torch.Generator] = None,
                   time_distribution: str = "uniform", time_shift: float = 1.0, unshifted_share: float = 0.0,
                   data_min_sigma: float = DATA_PREDICTION_MIN_SIGMA, max_time: float = 1.0,
                   loss_mask: Optional[torch.Tensor] = None, shard: Optional[BatchShard] = None,
                   **cond) -> torch.Tensor:
    """The loss of `objective` on clean data x0 (B, ...): EDM's weighted denoising loss, or flow matching with times
    drawn from `time_distribution` ("uniform" or "logit_normal") shifted by `time_shift` except for a share
    `unshifted_share`, scaled into (0, `max_time`], a data prediction's weight capped at sigma_t = `data_min_sigma`
    (flow only), over the elements where `loss_mask` (broadcastable to x0) is not 0; with a `shard`, this process's
    rows of the batch (`parallel.batch`)."""
    if check_objective(objective) == "edm":
        return edm_loss(denoiser, x0, sigma_data=SIGMA_DATA, generator=generator, loss_mask=loss_mask, shard=shard,
                        **cond)
    return flow_matching_loss(denoiser.model, x0, denoiser.path, denoiser.prediction, time_distribution, time_shift,
                              generator, unshifted_share, data_min_sigma, max_time, loss_mask, shard, **cond)
