"""Distances between two sets of samples, used to check samplers against a known data distribution."""
from typing import Optional

import torch


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, num_projections: int = 256,
                       generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Sliced 1-Wasserstein distance between point sets a (N, D) and b (M, D): the mean, over random unit
    directions, of the 1-D Wasserstein distance of the projections (Rabin et al. 2011). Quantiles are
    compared on a common grid, so N and M may differ."""
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"sliced_wasserstein needs (N, D) and (M, D) point sets, got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.to(torch.float64), b.to(torch.float64)
    directions = torch.randn(a.shape[1], num_projections, generator=generator, dtype=torch.float64)
    directions = directions / directions.norm(dim=0, keepdim=True)
    quantiles = (torch.arange(min(len(a), len(b)), dtype=torch.float64) + 0.5) / min(len(a), len(b))
    projected_a = torch.quantile((a @ directions), quantiles, dim=0)  # (Q, P)
    projected_b = torch.quantile((b @ directions), quantiles, dim=0)
    return (projected_a - projected_b).abs().mean()


def mmd_rbf(a: torch.Tensor, b: torch.Tensor, bandwidth: float = 0.5) -> torch.Tensor:
    """Squared maximum mean discrepancy with a Gaussian kernel (Gretton et al. 2012), the biased estimate."""
    a, b = a.to(torch.float64), b.to(torch.float64)

    def kernel(u, v):
        return torch.exp(-torch.cdist(u, v) ** 2 / (2 * bandwidth**2)).mean()

    return kernel(a, a) + kernel(b, b) - 2 * kernel(a, b)
