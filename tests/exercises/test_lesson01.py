"""Lesson 01 checks (DDPM), run against minisora by default and against your stubs with --impl=exercises."""
import pytest
import torch

pytestmark = pytest.mark.lesson01


def test_linear_betas_match_ho_et_al(impl):
    betas = impl.linear_betas()
    assert betas.shape == (1000,) and betas.dtype == torch.float64
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    differences = betas.diff()
    torch.testing.assert_close(differences, torch.full_like(differences, (0.02 - 1e-4) / 999))
    assert impl.linear_betas(10, 0.1, 0.2)[5].item() == pytest.approx(0.1 + 5 * 0.1 / 9)


def test_alphas_cumprod_is_the_running_product(impl):
    betas = torch.tensor([0.1, 0.2, 0.5, 0.3], dtype=torch.float64)
    expected, running = [], 1.0
    for beta in betas.tolist():
        running *= 1 - beta
        expected.append(running)
    torch.testing.assert_close(impl.alphas_cumprod(betas), torch.tensor(expected, dtype=torch.float64))


def schedule():
    from minisora.diffusion.schedules import alphas_cumprod, linear_betas
    return alphas_cumprod(linear_betas())


def test_q_sample_is_linear_in_data_and_noise(impl):
    alpha_bar = schedule()
    x0, noise = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    t = torch.tensor([0, 10, 200, 600, 999])
    scale = alpha_bar[t, None]
    torch.testing.assert_close(impl.q_sample(x0, t, alpha_bar, torch.zeros_like(noise)), scale.sqrt() * x0)
    torch.testing.assert_close(impl.q_sample(torch.zeros_like(x0), t, alpha_bar, noise), (1 - scale).sqrt() * noise)
    torch.testing.assert_close(impl.q_sample(x0, t, alpha_bar, noise),
                               scale.sqrt() * x0 + (1 - scale).sqrt() * noise)


def test_q_sample_of_images_broadcasts_per_sample(impl):
    alpha_bar = schedule()
    x0 = torch.ones(2, 3, 4, 4, dtype=torch.float64)
    out = impl.q_sample(x0, torch.tensor([0, 999]), alpha_bar, torch.zeros_like(x0))
    assert out.shape == x0.shape
    assert torch.allclose(out[0], alpha_bar[0].sqrt() * x0[0]) and torch.allclose(out[1], alpha_bar[999].sqrt() * x0[1])


def test_q_posterior_is_bayes_rule(impl):
    """The posterior of two Gaussians, q(x_{t-1} | x_0) and q(x_t | x_{t-1}), by adding precisions."""
    alpha_bar = schedule()
    x0, x_t = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    t = torch.tensor([1, 5, 500, 999])
    previous, current = alpha_bar[t - 1, None], alpha_bar[t, None]
    alpha = current / previous
    precision = 1 / (1 - previous) + alpha / (1 - alpha)
    expected_mean = (previous.sqrt() * x0 / (1 - previous) + alpha.sqrt() * x_t / (1 - alpha)) / precision
    mean, variance = impl.q_posterior(x0, x_t, t, alpha_bar)
    torch.testing.assert_close(mean, expected_mean)
    torch.testing.assert_close(variance.expand_as(mean), (1 / precision).expand_as(mean))


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
def test_predict_x0_inverts_the_forward_process(impl, prediction):
    alpha_bar = schedule()[torch.tensor([3, 300, 900]), None]
    x0, noise = torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise
    output = {"epsilon": noise, "x0": x0, "v": alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * x0}[prediction]
    torch.testing.assert_close(impl.predict_x0(x_t, output, alpha_bar, prediction), x0)
