"""The equivalences the papers state, checked in float64 on the exact Gaussian-mixture denoiser."""
import pytest
import torch

from minisora.diffusion.ddim import ddim_sample
from minisora.diffusion.ddpm import PREDICTIONS, ddpm_sample, network_from_denoiser, predict_x0
from minisora.diffusion.denoisers import VPDenoiser
from minisora.diffusion.edm import vp_preconditioning
from minisora.diffusion.samplers import sample_euler, sample_euler_ancestral, sample_heun
from minisora.diffusion.schedules import (alphas_cumprod, cosine_betas, linear_betas, respace_timesteps,
                                          sigmas_from_timesteps)
from minisora.diffusion.score_sde import sample_probability_flow
from minisora.models.mlp import ToyMLP, ToyMLPConfig

ALPHAS_CUMPROD = alphas_cumprod(linear_betas())


def start_noise(n=64, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("num_steps", [10, 50])
def test_deterministic_ddim_is_euler_in_sigma_space(mixture, num_steps):
    """Song et al. 2021 (Section 4.3) / Karras et al. 2022 (Section 3): DDIM with eta = 0 is Euler's method on the
    probability-flow ODE in x / sqrt(alpha_bar), with sigma as time."""
    timesteps = respace_timesteps(1000, num_steps)
    sigmas = sigmas_from_timesteps(ALPHAS_CUMPROD, timesteps)
    x_T = start_noise()  # DDIM's x_T ~ N(0, I)
    ddim = ddim_sample(network_from_denoiser(mixture.denoiser, ALPHAS_CUMPROD), x_T, ALPHAS_CUMPROD, timesteps)
    euler = sample_euler(mixture.denoiser, x_T * (1 + sigmas[0] ** 2).sqrt(), sigmas)
    torch.testing.assert_close(ddim, euler, rtol=1e-10, atol=1e-10)


def test_ddim_eta_family_is_euler_ancestral(mixture):
    """DDIM's eta in Eq. 16 and the ancestral split of a step in sigma space are the same noise, step by step."""
    timesteps = respace_timesteps(1000, 20)
    sigmas = sigmas_from_timesteps(ALPHAS_CUMPROD, timesteps)
    x_T = start_noise()
    for eta in (0.5, 1.0):
        ddim = ddim_sample(network_from_denoiser(mixture.denoiser, ALPHAS_CUMPROD), x_T, ALPHAS_CUMPROD, timesteps,
                           eta=eta, generator=torch.Generator().manual_seed(1))
        ancestral = sample_euler_ancestral(mixture.denoiser, x_T * (1 + sigmas[0] ** 2).sqrt(), sigmas, eta=eta,
                                           generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(ddim, ancestral, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("betas", [linear_betas(), cosine_betas()], ids=["linear", "cosine"])
def test_ddpm_ancestral_sampling_is_ddim_with_eta_one(mixture, betas):
    """Ho et al. Algorithm 2 with sigma_t^2 = beta~_t equals DDIM with eta = 1 on every step (Song et al. Eq. 16)."""
    schedule = alphas_cumprod(betas)
    model = network_from_denoiser(mixture.denoiser, schedule)
    x_T = start_noise(16)
    ddpm = ddpm_sample(model, x_T, schedule, generator=torch.Generator().manual_seed(2))
    ddim = ddim_sample(model, x_T, schedule, torch.arange(999, -1, -1), eta=1.0,
                       generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(ddpm, ddim, rtol=1e-8, atol=1e-8)


def test_edm_vp_preconditioning_is_the_ddpm_parameterisation():
    """Karras et al. Table 1, VP column: D = x - sigma eps(x / sqrt(1 + sigma^2), t) is DDPM's x_0 prediction."""
    torch.manual_seed(0)
    eps_net = ToyMLP(ToyMLPConfig()).double()
    t = torch.tensor([0, 3, 250, 999])
    sigma = sigmas_from_timesteps(ALPHAS_CUMPROD, t)[:-1]
    x = start_noise(4) * (1 + sigma[:, None] ** 2).sqrt()
    c_skip, c_out, c_in, c_noise = vp_preconditioning(sigma, ALPHAS_CUMPROD)
    table_1 = c_skip[:, None] * x + c_out[:, None] * eps_net(c_in[:, None] * x, c_noise)
    # DDPM's own route: x_t = sqrt(alpha_bar) x, then Eq. 15 for x_0
    x_t = x * ALPHAS_CUMPROD[t, None].sqrt()
    ddpm = predict_x0(x_t, eps_net(x_t, t.double()), ALPHAS_CUMPROD[t, None], "epsilon")
    torch.testing.assert_close(table_1, ddpm, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(VPDenoiser(eps_net, ALPHAS_CUMPROD)(x, sigma), ddpm, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_every_prediction_type_round_trips_to_the_same_denoiser(mixture, prediction):
    """An eps-, x0- or v-network made from a denoiser, wrapped back as a denoiser, is that denoiser."""
    t = torch.tensor([1, 10, 500, 998])
    sigma = sigmas_from_timesteps(ALPHAS_CUMPROD, t)[:-1]
    x = start_noise(4) * (1 + sigma[:, None] ** 2).sqrt()
    network = network_from_denoiser(mixture.denoiser, ALPHAS_CUMPROD, prediction)
    round_trip = VPDenoiser(network, ALPHAS_CUMPROD, prediction)(x, sigma)
    torch.testing.assert_close(round_trip, mixture.denoiser(x, sigma), rtol=1e-9, atol=1e-9)


def test_vp_probability_flow_ode_matches_ddims_limit(mixture):
    """Song et al. 2021 (ICLR): the probability-flow ODE of the VP SDE is the ODE that DDIM discretises. Integrated
    on DDPM's 1000 noise levels, Euler in the SDE's time and DDIM (Euler in sigma) land on the same samples as a
    2nd-order solution, up to their O(1/N) discretisation error."""
    sigmas = sigmas_from_timesteps(ALPHAS_CUMPROD, torch.arange(999, -1, -1))
    x = start_noise(256) * sigmas[0]
    ddim = sample_euler(mixture.denoiser, x, sigmas)
    flow = sample_probability_flow(mixture.denoiser, x, sigmas)
    reference = sample_heun(mixture.denoiser, x, sigmas)
    coarse = sigmas_from_timesteps(ALPHAS_CUMPROD, respace_timesteps(1000, 100))
    coarse_error = (sample_euler(mixture.denoiser, start_noise(256) * coarse[0], coarse) - reference).abs().mean()
    for solution in (ddim, flow):
        error = (solution - reference).abs().mean()
        assert error < 0.01, error
    assert (ddim - flow).abs().mean() < 0.01
    assert coarse_error > 2 * (ddim - reference).abs().mean()  # the agreement comes from the limit, not luck
