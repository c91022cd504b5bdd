"""Improved DDPM's learned variances (Nichol & Dhariwal 2021), as DiT trains them: the bound's pieces against
closed forms, the hybrid loss's stop-gradient, and the variance it learns against the exact optimum."""
import math

import pytest
import torch

from minisora.diffusion.ddpm import (ddpm_sample, discretized_gaussian_log_likelihood, hybrid_loss,
                                     learned_log_variance, normal_kl, q_posterior, q_sample, vlb_terms)
from minisora.diffusion.schedules import alphas_cumprod, linear_betas


def test_normal_kl_matches_torch_distributions():
    generator = torch.Generator().manual_seed(0)
    mean1, mean2, log1, log2 = torch.randn(4, 10, generator=generator, dtype=torch.float64)
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(mean1, (0.5 * log1).exp()),
                                                 torch.distributions.Normal(mean2, (0.5 * log2).exp()))
    torch.testing.assert_close(normal_kl(mean1, log1, mean2, log2), expected)
    assert normal_kl(mean1, log1, mean1, log1).abs().max() < 1e-12


def test_the_discretized_decoder_is_a_distribution_over_the_256_levels():
    levels = torch.linspace(-1, 1, 256, dtype=torch.float64)  # 8-bit values in [-1, 1]
    for mean, log_variance in ((0.3, math.log(0.01)), (-0.97, math.log(0.2)), (1.5, math.log(1e-4))):
        log_probability = discretized_gaussian_log_likelihood(levels, torch.full_like(levels, mean),
                                                              torch.full_like(levels, log_variance))
        assert abs(log_probability.exp().sum().item() - 1) < 1e-9
    # an interior bin's probability is the Gaussian's mass over it
    normal = torch.distributions.Normal(torch.tensor(0.3, dtype=torch.float64), 0.1)
    inner = levels[100:101]
    mass = normal.cdf(inner + 1 / 255) - normal.cdf(inner - 1 / 255)
    torch.testing.assert_close(discretized_gaussian_log_likelihood(inner, torch.full_like(inner, 0.3),
                                                                   torch.full_like(inner, math.log(0.01))), mass.log())


def test_learned_log_variance_spans_beta_tilde_to_beta():
    cumprod = alphas_cumprod(linear_betas(1000))
    t = torch.tensor([1, 10, 500, 999])
    betas = linear_betas(1000).double()
    _, posterior_variance = q_posterior(torch.zeros(4, 1, dtype=torch.float64), torch.zeros(4, 1, dtype=torch.float64), t,
                                       cumprod)
    upper = learned_log_variance(torch.ones(4, 1, dtype=torch.float64), t, cumprod)
    lower = learned_log_variance(-torch.ones(4, 1, dtype=torch.float64), t, cumprod)
    torch.testing.assert_close(upper[:, 0], betas[t].log())
    torch.testing.assert_close(lower[:, 0], posterior_variance[:, 0].log())
    middle = learned_log_variance(torch.zeros(4, 1, dtype=torch.float64), t, cumprod)
    torch.testing.assert_close(middle, (upper + lower) / 2)


def test_the_exact_posterior_has_zero_kl():
    cumprod = alphas_cumprod(linear_betas(100))
    x0 = torch.rand(3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    t = torch.tensor([1, 40, 99])
    x_t = q_sample(x0, t, cumprod, torch.randn(3, 2, dtype=torch.float64))
    mean, variance = q_posterior(x0, x_t, t, cumprod)
    assert vlb_terms(x0, x_t, t, mean, variance.log().expand_as(x0), cumprod).abs().max() < 1e-12
    wider = vlb_terms(x0, x_t, t, mean, (2 * variance).log().expand_as(x0), cumprod)
    assert bool((wider > 0).all())


def test_the_vlb_of_the_hybrid_loss_trains_only_the_variance():
    cumprod = alphas_cumprod(linear_betas(50))
    x0 = torch.rand(8, 4, dtype=torch.float64) * 2 - 1
    output = torch.randn(8, 8, dtype=torch.float64, requires_grad=True)

    def gradient(weight):
        output.grad = None
        hybrid_loss(lambda x_t, t: output, x0, cumprod, vlb_weight=weight, generator=torch.Generator().manual_seed(1)).backward()
        return output.grad.clone()

    without, with_vlb = gradient(0.0), gradient(1.0)
    torch.testing.assert_close(with_vlb[:, :4], without[:, :4])  # the epsilon half: L_simple's gradient only
    assert without[:, 4:].abs().max() == 0 and with_vlb[:, 4:].abs().max() > 0


def test_minimising_the_bound_learns_the_exact_reverse_variance():
    """For x0 ~ N(0, s^2) and the exact mean, E KL(q || N(mu, Sigma)) is least at Sigma = beta~_t + c^2 Var(x0 | x_t),
    c = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) the weight of x0 in the posterior mean (a closed form)."""
    num_steps, s = 100, 0.5
    cumprod = alphas_cumprod(linear_betas(num_steps))
    steps = torch.tensor([2, 10, 30, 60, 95])
    variance_output = torch.zeros(len(steps), requires_grad=True)  # one free v per timestep
    optimizer = torch.optim.Adam([variance_output], lr=0.05)
    generator = torch.Generator().manual_seed(0)
    for _ in range(400):
        x0 = s * torch.randn(len(steps), 2000, generator=generator, dtype=torch.float64)
        x_t = q_sample(x0, steps, cumprod, torch.randn(x0.shape, generator=generator, dtype=torch.float64))
        alpha_bar = cumprod[steps, None]
        # the exact E[x0 | x_t] for Gaussian data, and the posterior mean it gives
        x0_hat = s**2 * alpha_bar.sqrt() / (alpha_bar * s**2 + 1 - alpha_bar) * x_t
        mean, _ = q_posterior(x0_hat, x_t, steps, cumprod)
        log_variance = learned_log_variance(variance_output[:, None].double().expand_as(x0), steps, cumprod)
        loss = vlb_terms(x0, x_t, steps, mean, log_variance, cumprod).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    alpha_bar, alpha_bar_prev = cumprod[steps], cumprod[steps - 1]
    beta = 1 - alpha_bar / alpha_bar_prev
    c = alpha_bar_prev.sqrt() * beta / (1 - alpha_bar)
    optimum = (1 - alpha_bar_prev) / (1 - alpha_bar) * beta + c**2 * s**2 * (1 - alpha_bar) / (alpha_bar * s**2 + 1 - alpha_bar)
    learned = learned_log_variance(variance_output.detach()[:, None].double(), steps, cumprod)[:, 0].exp()
    torch.testing.assert_close(learned, optimum, rtol=0.03, atol=0)


def test_a_dit_with_learned_sigma_trains_on_the_hybrid_loss_and_samples():
    from minisora.models.dit import DiT, DiTConfig

    torch.manual_seed(0)
    cumprod = alphas_cumprod(linear_betas(50, 1e-3, 0.2))  # a short chain: 50 steps
    model = DiT(DiTConfig(input_size=8, in_channels=3, patch_size=2, hidden=32, depth=2, heads=2, num_classes=0,
                          learn_sigma=True))
    x0 = torch.rand(64, 3, 1, 8, 8) * 2 - 1
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(60):
        loss = hybrid_loss(lambda x_t, t: model(x_t, t.float()), x0, cumprod, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) < 0.7 * sum(losses[:10])
    samples = ddpm_sample(lambda x_t, t: model(x_t, t.float()), torch.randn(4, 3, 1, 8, 8), cumprod,
                          variance="learned", generator=torch.Generator().manual_seed(2))
    assert samples.shape == (4, 3, 1, 8, 8) and torch.isfinite(samples).all()
    with pytest.raises(ValueError, match="learn_sigma"):
        ddpm_sample(lambda x_t, t: torch.zeros(4, 3, 1, 8, 8), torch.randn(4, 3, 1, 8, 8), cumprod, variance="learned")
