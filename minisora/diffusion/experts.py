"""Expert denoisers for ranges of noise levels (Balaji et al. 2022, "eDiff-I: Text-to-Image Diffusion Models with an
Ensemble of Expert Denoisers").

A diffusion model does different jobs at different noise levels: at high noise it decides the layout (where the
object is, which way it moves), near the data it sharpens details (a triangle's tips). eDiff-I trains one model on
every level, then fine-tunes copies of it on parts of the range and samples with each on its own part: more capacity
at no extra cost per sampling step, since exactly one expert runs at each step. Here two experts: the model trained
on every level for the noisy end, and a copy fine-tuned near the data for the clean end.
"""
import torch
from torch import nn


class NoiseLevelExperts(nn.Module):
    """D(x, sigma) = low(x, sigma) where sigma < switch_sigma, high(x, sigma) elsewhere: two denoisers of one
    interface, each item of a batch routed by its own noise level sigma (B,)."""

    def __init__(self, high: nn.Module, low: nn.Module, switch_sigma: float):
        super().__init__()
        if not switch_sigma > 0:
            raise ValueError(f"switch_sigma must be a positive noise level, got {switch_sigma}")
        self.high, self.low, self.switch_sigma = high, low, switch_sigma

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, **cond) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(x.shape[0])  # (B,)
        near_data = sigma < self.switch_sigma  # (B,)
        if near_data.all():
            return self.low(x, sigma, **cond)
        if not near_data.any():
            return self.high(x, sigma, **cond)
        # a batch that straddles the switch: each expert denoises its own items
        denoised = torch.empty_like(x)
        for expert, chosen in ((self.low, near_data), (self.high, ~near_data)):
            denoised[chosen] = expert(x[chosen], sigma[chosen], **{name: value[chosen] for name, value in cond.items()})
        return denoised
