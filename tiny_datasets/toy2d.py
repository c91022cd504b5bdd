"""2D toy distributions for the diffusion lessons, and a Gaussian mixture whose ideal denoiser is exact.

For x = x_0 + sigma * noise with x_0 from a Gaussian mixture sum_k w_k N(mu_k, S_k), the posterior mean
E[x_0 | x] has a closed form, so every sampler can be checked against the true data distribution with no
training at all. All sampling is deterministic given a torch.Generator.
"""
import math
from typing import Optional

import torch


class GaussianMixture:
    """A mixture of K Gaussians in D dimensions, with its exact denoiser E[x_0 | x_0 + sigma * noise = x]."""

    def __init__(self, means: torch.Tensor, covariances: torch.Tensor, weights: Optional[torch.Tensor] = None):
        means = torch.as_tensor(means, dtype=torch.float64)  # (K, D)
        covariances = torch.as_tensor(covariances, dtype=torch.float64)  # (K, D, D)
        if means.dim() != 2 or covariances.shape != (*means.shape, means.shape[1]):
            raise ValueError(f"means must be (K, D) and covariances (K, D, D); got {tuple(means.shape)} "
                             f"and {tuple(covariances.shape)}")
        weights = torch.full((len(means),), 1 / len(means), dtype=torch.float64) if weights is None else \
            torch.as_tensor(weights, dtype=torch.float64)
        if weights.shape != (len(means),) or bool((weights < 0).any()) or abs(float(weights.sum()) - 1) > 1e-9:
            raise ValueError(f"weights must be {len(means)} non-negative numbers summing to 1, got {weights.tolist()}")
        self.means, self.covariances, self.weights = means, covariances, weights
        self.num_components, self.dim = means.shape

    def sample(self, n: int, generator: Optional[torch.Generator] = None, return_labels: bool = False):
        """n points, float32 (n, D); with return_labels, also the component of each (n,)."""
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        root = torch.linalg.cholesky(self.covariances)  # (K, D, D)
        points = self.means[labels] + torch.einsum("nij,nj->ni", root[labels], noise)
        return (points.float(), labels) if return_labels else points.float()

    def mean(self) -> torch.Tensor:
        """E[x_0] = sum_k w_k mu_k."""
        return (self.weights[:, None] * self.means).sum(0)

    def covariance(self) -> torch.Tensor:
        """Cov[x_0] = sum_k w_k (S_k + mu_k mu_k^T) - E[x_0] E[x_0]^T."""
        second_moment = (self.weights[:, None, None] * (self.covariances + torch.einsum("ki,kj->kij", self.means,
                                                                                         self.means))).sum(0)
        return second_moment - torch.outer(self.mean(), self.mean())

    def projected_quantiles(self, directions: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """Exact quantiles (Q, P) of the 1-D projections u.x_0 onto each direction u (D, P), at `levels` (Q,):
        each projection is a 1-D mixture of N(u.mu_k, u^T S_k u); its CDF is inverted by bisection."""
        means = self.means @ directions  # (K, P)
        stds = torch.einsum("dp,kde,ep->kp", directions, self.covariances, directions).sqrt()  # (K, P)

        def cdf(values):  # values (Q, P) -> mixture CDF (Q, P)
            standardised = (values[:, None, :] - means[None]) / stds[None]  # (Q, K, P)
            return (self.weights[None, :, None] * 0.5 * (1 + torch.erf(standardised / 2**0.5))).sum(1)

        low = (means - 10 * stds).min(0).values.expand(len(levels), -1).clone()
        high = (means + 10 * stds).max(0).values.expand(len(levels), -1).clone()
        for _ in range(60):  # each bisection halves the bracket: 60 halvings reach float64 precision
            middle = (low + high) / 2
            below = cdf(middle) < levels[:, None]
            low, high = torch.where(below, middle, low), torch.where(below, high, middle)
        return (low + high) / 2

    def denoiser(self, x: torch.Tensor, sigma: torch.Tensor, label: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The ideal denoiser E[x_0 | x] at noise level sigma (B,), computed in float64 and returned in x's dtype.

        With `label` (B,), the mixture is conditioned on that component (the class-conditional model of lesson 05);
        a label equal to num_components means "no label" (the null class of classifier-free guidance).
        """
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must be (B, {self.dim}), got {tuple(x.shape)}")
        x64 = x.to(torch.float64)
        sigma64 = torch.as_tensor(sigma, dtype=torch.float64).expand(x.shape[0])
        # noisy covariance of component k:  C_k = S_k + sigma^2 I, inverted once per distinct sigma   (U, K, D, D)
        levels, level_of_point = torch.unique(sigma64, return_inverse=True)
        noisy_cov = self.covariances[None] + levels[:, None, None, None] ** 2 * torch.eye(self.dim, dtype=torch.float64)
        inverse, log_determinant = torch.linalg.inv(noisy_cov), torch.logdet(noisy_cov)
        difference = x64[:, None, :] - self.means[None]  # (B, K, D)
        solved = torch.einsum("bkij,bkj->bki", inverse[level_of_point], difference)  # C_k^{-1} (x - mu_k)
        # log w_k N(x; mu_k, C_k), up to a constant shared by all k
        log_density = -0.5 * (difference * solved).sum(-1) - 0.5 * log_determinant[level_of_point]
        log_posterior = self.weights.log()[None] + log_density  # (B, K)
        if label is not None:
            keep = torch.as_tensor(label)[:, None] == torch.arange(self.num_components)[None]
            null = torch.as_tensor(label) == self.num_components
            keep = keep | null[:, None]
            log_posterior = log_posterior.masked_fill(~keep, -math.inf)
        responsibility = torch.softmax(log_posterior, dim=1)  # p(k | x)
        # E[x_0 | x, k] = mu_k + S_k C_k^{-1} (x - mu_k)
        component_mean = self.means[None] + torch.einsum("kij,bkj->bki", self.covariances, solved)
        return (responsibility[..., None] * component_mean).sum(1).to(x.dtype)


def ring_of_gaussians(num_components: int = 8, radius: float = 2.0, std: float = 0.15) -> GaussianMixture:
    """The classic ring of equal Gaussians (num_components of them, evenly spaced on a circle)."""
    angle = torch.arange(num_components, dtype=torch.float64) * 2 * math.pi / num_components
    means = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    covariances = (std**2) * torch.eye(2, dtype=torch.float64).expand(num_components, 2, 2)
    return GaussianMixture(means, covariances)


def skewed_mixture() -> GaussianMixture:
    """Three unequal, correlated Gaussians with unequal weights: a harder test than a symmetric ring."""
    means = torch.tensor([[-1.5, -0.5], [1.0, 1.2], [1.2, -1.3]], dtype=torch.float64)
    covariances = torch.tensor([[[0.30, 0.12], [0.12, 0.10]],
                                [[0.05, 0.00], [0.00, 0.20]],
                                [[0.15, -0.08], [-0.08, 0.10]]], dtype=torch.float64)
    return GaussianMixture(means, covariances, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))


def two_moons(n: int, noise: float = 0.08, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Two interleaved half circles (n, 2), centred and scaled to about unit variance."""
    upper = torch.rand(n, generator=generator) < 0.5
    angle = torch.rand(n, generator=generator) * math.pi
    x = torch.where(upper, angle.cos(), 1 - angle.cos())
    y = torch.where(upper, angle.sin(), 0.5 - angle.sin())
    points = torch.stack([x - 0.5, y - 0.25], dim=1) * 1.6
    return points + noise * torch.randn(n, 2, generator=generator)


def spiral(n: int, noise: float = 0.05, turns: float = 1.5, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """An Archimedean spiral arm (n, 2), about unit variance."""
    u = torch.rand(n, generator=generator)
    angle = u * turns * 2 * math.pi
    radius = 0.3 + 1.7 * u
    points = radius[:, None] * torch.stack([angle.cos(), angle.sin()], dim=1)
    return points + noise * torch.randn(n, 2, generator=generator)


DATASETS = ("ring", "skewed", "moons", "spiral")


def sample_toy(name: str, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """n points of the named 2D dataset, float32 (n, 2)."""
    if name == "ring":
        return ring_of_gaussians().sample(n, generator)
    if name == "skewed":
        return skewed_mixture().sample(n, generator)
    if name == "moons":
        return two_moons(n, generator=generator)
    if name == "spiral":
        return spiral(n, generator=generator)
    raise ValueError(f"unknown 2D dataset {name!r}; choose one of {DATASETS}")
