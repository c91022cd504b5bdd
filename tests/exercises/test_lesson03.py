"""Lesson 03 checks (score SDEs), run against minisora by default and against your stubs with --impl=exercises."""
import pytest
import torch

from minisora.diffusion.score_sde import VESDE, VPSDE
from tiny_datasets.toy2d import GaussianMixture

pytestmark = pytest.mark.lesson03

MEAN, VARIANCE = torch.tensor([[0.5, -1.0]], dtype=torch.float64), 0.3


def single_gaussian():
    return GaussianMixture(MEAN, VARIANCE * torch.eye(2, dtype=torch.float64)[None])


@pytest.mark.parametrize("sde", [VPSDE(), VESDE()], ids=["vp", "ve"])
def test_score_of_a_gaussian_is_exact(impl, sde):
    """x_t = alpha x_0 + alpha sigma eps with x_0 ~ N(m, v I) is N(alpha m, alpha^2 (v + sigma^2) I), whose score is known."""
    t = torch.tensor(0.4, dtype=torch.float64)
    alpha, sigma = sde.alpha(t), sde.sigma(t)
    x_t = torch.randn(8, 2, dtype=torch.float64)
    expected = -(x_t - alpha * MEAN) / (alpha**2 * (VARIANCE + sigma**2))
    torch.testing.assert_close(impl.score_from_denoiser(single_gaussian().denoiser, sde, x_t, t, None), expected)


def test_langevin_dynamics_settles_on_the_target(impl):
    """Many corrector steps with the exact score of N(m, v I) move samples from elsewhere onto that Gaussian (up to
    the O(epsilon) bias of unadjusted Langevin: variance v / (1 - epsilon / 2v), about 0.307 here)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(20000, 2, generator=generator, dtype=torch.float64) + MEAN + 1
    for _ in range(600):
        score = -(x - MEAN) / VARIANCE
        x = impl.langevin_correction(x, score, torch.randn(x.shape, generator=generator, dtype=torch.float64), 0.15)
    torch.testing.assert_close(x.mean(0), MEAN[0], atol=0.03, rtol=0)
    torch.testing.assert_close(x.var(0), torch.full((2,), VARIANCE, dtype=torch.float64), atol=0.03, rtol=0)


def test_langevin_step_size_follows_the_signal_to_noise_ratio(impl):
    """epsilon = 2 (r ||z|| / ||s||)^2: with ||z|| = 1 and ||s|| = 2, r = 0.5 gives epsilon = 1/8."""
    x, score, noise = torch.zeros(2, 2), torch.tensor([[2.0, 0.0], [0.0, 2.0]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    epsilon = 2 * (0.5 * 1 / 2) ** 2
    expected = epsilon * score + (2 * epsilon) ** 0.5 * noise
    torch.testing.assert_close(impl.langevin_correction(x, score, noise, 0.5), expected)
