"""Distances between sample sets, or between samples and a known distribution, to check samplers against data."""
from typing import Optional

import torch


def random_directions(dim: int, count: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """`count` random unit vectors in `dim` dimensions, float64 (dim, count)."""
    directions = torch.randn(dim, count, generator=generator, dtype=torch.float64)
    return directions / directions.norm(dim=0, keepdim=True)


def quantile_levels(count: int) -> torch.Tensor:
    """The midpoints (i + 1/2) / count, i = 0 .. count-1: where two 1-D distributions are compared."""
    return (torch.arange(count, dtype=torch.float64) + 0.5) / count


def projected_quantiles(points: torch.Tensor, directions: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Quantiles at `levels` (Q,) of the projections of points (N, D) onto each direction (D, P): (Q, P)."""
    return torch.quantile(points.to(torch.float64) @ directions, levels, dim=0)


def sliced_wasserstein_from_quantiles(quantiles_a: torch.Tensor, quantiles_b: torch.Tensor) -> torch.Tensor:
    """Sliced 1-Wasserstein distance from matching quantiles (Q, P): W1 of each 1-D projection is the mean
    |F_a^{-1}(q) - F_b^{-1}(q)| over the levels q, and the slices are averaged (Rabin et al. 2011)."""
    return (quantiles_a - quantiles_b).abs().mean()


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, num_projections: int = 256,
                       generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Sliced 1-Wasserstein distance between point sets a (N, D) and b (M, D), over random unit directions.
    Quantiles are compared on a common grid, so N and M may differ."""
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"sliced_wasserstein needs (N, D) and (M, D) point sets, got {tuple(a.shape)} and {tuple(b.shape)}")
    directions = random_directions(a.shape[1], num_projections, generator)
    levels = quantile_levels(min(len(a), len(b)))
    return sliced_wasserstein_from_quantiles(projected_quantiles(a, directions, levels),
                                             projected_quantiles(b, directions, levels))


def mmd_rbf(a: torch.Tensor, b: torch.Tensor, bandwidth: float = 0.5) -> torch.Tensor:
    """Squared maximum mean discrepancy with a Gaussian kernel (Gretton et al. 2012), the biased estimate."""
    a, b = a.to(torch.float64), b.to(torch.float64)

    def kernel(u, v):
        return torch.exp(-torch.cdist(u, v) ** 2 / (2 * bandwidth**2)).mean()

    return kernel(a, a) + kernel(b, b) - 2 * kernel(a, b)


def gaussian_frechet_distance(mean_a: torch.Tensor, covariance_a: torch.Tensor, mean_b: torch.Tensor,
                              covariance_b: torch.Tensor) -> torch.Tensor:
    """Frechet (2-Wasserstein) distance squared between two Gaussians, as FID computes it (Heusel et al. 2017):
    ||m_a - m_b||^2 + Tr(C_a + C_b - 2 (C_a^{1/2} C_b C_a^{1/2})^{1/2})."""
    mean_a, mean_b = mean_a.to(torch.float64), mean_b.to(torch.float64)
    covariance_a, covariance_b = covariance_a.to(torch.float64), covariance_b.to(torch.float64)

    def psd_sqrt(matrix):
        values, vectors = torch.linalg.eigh(matrix)
        return vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T

    root_a = psd_sqrt(covariance_a)
    cross = torch.linalg.eigvalsh(root_a @ covariance_b @ root_a).clamp(min=0).sqrt().sum()
    return (mean_a - mean_b).pow(2).sum() + torch.trace(covariance_a) + torch.trace(covariance_b) - 2 * cross


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> torch.Tensor:
    """The FID-style distance between two sets of features (N, F) and (M, F): Gaussian fits, then
    `gaussian_frechet_distance`. Which features decide what it measures (see `models.classifier`)."""
    return gaussian_frechet_distance(features_a.double().mean(0), features_a.double().T.cov(),
                                     features_b.double().mean(0), features_b.double().T.cov())
