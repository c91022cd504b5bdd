"""The 2D toy data and the exact Gaussian-mixture denoiser, checked against Monte Carlo and limits."""
import pytest
import torch

from tiny_datasets.toy2d import DATASETS, GaussianMixture, sample_toy


@pytest.mark.parametrize("name", DATASETS)
def test_datasets_are_deterministic_and_unit_scale(name):
    first = sample_toy(name, 5000, torch.Generator().manual_seed(0))
    second = sample_toy(name, 5000, torch.Generator().manual_seed(0))
    assert torch.equal(first, second) and first.shape == (5000, 2)
    assert 0.3 < float(first.std(0).mean()) < 2.0


def test_exact_denoiser_is_the_posterior_mean(mixture):
    """E[x_0 | x] by Monte Carlo: weight many x_0 draws by the likelihood N(x; x_0, sigma^2 I)."""
    x0 = mixture.sample(400_000, torch.Generator().manual_seed(1)).double()
    x = torch.tensor([[0.3, -0.2], [1.5, 1.0], [-2.0, 0.5]], dtype=torch.float64)
    sigma = 0.6
    log_weights = -((x[:, None, :] - x0[None]) ** 2).sum(-1) / (2 * sigma**2)  # (3, N)
    weights = torch.softmax(log_weights, dim=1)
    monte_carlo = weights @ x0
    exact = mixture.denoiser(x, torch.full((3,), sigma, dtype=torch.float64))
    torch.testing.assert_close(exact, monte_carlo, atol=0.02, rtol=0)


def test_exact_denoiser_limits(mixture):
    x = torch.randn(5, 2, dtype=torch.float64)
    torch.testing.assert_close(mixture.denoiser(x, torch.full((5,), 1e-6, dtype=torch.float64)), x)
    far = mixture.denoiser(x * 1e4, torch.full((5,), 1e4, dtype=torch.float64))
    torch.testing.assert_close(far, mixture.mean().expand(5, 2), atol=1e-3, rtol=0)


def test_moments_match_samples(mixture):
    points = mixture.sample(400_000, torch.Generator().manual_seed(2)).double()
    torch.testing.assert_close(points.mean(0), mixture.mean(), atol=0.01, rtol=0)
    torch.testing.assert_close(points.T.cov(), mixture.covariance(), atol=0.01, rtol=0)


def test_bad_mixtures_are_clear_errors():
    with pytest.raises(ValueError, match="summing to 1"):
        GaussianMixture(torch.zeros(2, 2), torch.eye(2).expand(2, 2, 2), torch.tensor([0.5, 0.6]))
    with pytest.raises(ValueError, match=r"\(K, D, D\)"):
        GaussianMixture(torch.zeros(2, 2), torch.eye(3).expand(2, 3, 3))


def test_exact_projected_quantiles_match_a_large_sample(mixture):
    from minisora.metrics import projected_quantiles, quantile_levels, random_directions, sliced_wasserstein_from_quantiles

    directions = random_directions(2, 8, torch.Generator().manual_seed(0))
    levels = quantile_levels(500)
    exact = mixture.projected_quantiles(directions, levels)
    sample = projected_quantiles(mixture.sample(400_000, torch.Generator().manual_seed(3)), directions, levels)
    assert float(sliced_wasserstein_from_quantiles(exact, sample)) < 0.005
    shifted = projected_quantiles(mixture.sample(400_000, torch.Generator().manual_seed(3)) + 0.1, directions, levels)
    assert float(sliced_wasserstein_from_quantiles(exact, shifted)) > 0.05
