"""Lesson 08 checks (DiT), against minisora by default and your stubs with --impl=exercises."""
import pytest
import torch

from minisora.models.dit import CONDITIONINGS, DiTConfig, dit_config, forward_gflops

pytestmark = pytest.mark.lesson08


def test_modulate_scales_and_shifts_every_token_of_a_sample_alike(impl):
    x, shift, scale = torch.randn(2, 5, 3), torch.randn(2, 3), torch.randn(2, 3)
    out = impl.modulate(x, shift, scale)
    for b in range(2):
        for n in range(5):
            torch.testing.assert_close(out[b, n], x[b, n] * (1 + scale[b]) + shift[b])
    torch.testing.assert_close(impl.modulate(x, torch.zeros(2, 3), torch.zeros(2, 3)), x)


@pytest.mark.parametrize("name, gflops", [("DiT-S/2", 6.06), ("DiT-B/2", 23.01), ("DiT-L/2", 80.71),
                                          ("DiT-XL/2", 118.64)])
def test_hand_count_matches_the_papers_table(impl, name, gflops):
    """Peebles & Xie 2023, Table 1 (adaLN-Zero, 256x256 images as 32x32x4 latents)."""
    assert abs(impl.analytic_gflops(dit_config(name)) - gflops) / gflops < 0.005


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_hand_count_matches_the_flop_counter(impl, conditioning):
    for config in (dit_config("DiT-S/4", conditioning=conditioning),
                   DiTConfig(input_size=16, frames=4, temporal_patch=2, in_channels=3, hidden=64, depth=3, heads=4,
                             num_classes=0, learn_sigma=False, conditioning=conditioning)):
        measured = forward_gflops(config)  # PyTorch's counter on a meta-device model
        assert abs(impl.analytic_gflops(config) - measured) <= 1e-6 * measured


def test_maes_position_table_puts_the_column_first_as_sine_then_cosine(impl):
    """Against the formula, in float64, token by token; and against minisora's own table (the row first, [cos, sin]),
    whose quarters it holds in another order."""
    import numpy as np

    from minisora.models.embeddings import sincos_position_embedding

    height, width, dim = 3, 5, 16
    table = impl.mae_position_embedding(height, width, dim)
    assert table.shape == (height * width, dim)
    omega = 10000.0 ** (-np.arange(dim // 4) / (dim // 4))
    for row in range(height):
        for column in range(width):
            expected = np.concatenate([np.sin(column * omega), np.cos(column * omega),
                                       np.sin(row * omega), np.cos(row * omega)])
            np.testing.assert_allclose(table[row * width + column].double().numpy(), expected, atol=1e-5)
    quarters = table.chunk(4, dim=1)
    torch.testing.assert_close(torch.cat([quarters[3], quarters[2], quarters[1], quarters[0]], dim=1),
                               sincos_position_embedding((1, height, width), dim).to(table.dtype))
    with pytest.raises(ValueError):
        impl.mae_position_embedding(2, 2, 6)


class TinyLearnedVarianceNetwork(torch.nn.Module):
    """A fixed random network of DDPM's form, model(x_t, t) -> (B, 2C, ...): a noise prediction near the best one for
    unit Gaussian data (E[eps | x_t] = sqrt(1 - alpha_bar_t) x_t) plus a random part, and a variance output in
    (-1, 1), both depending on x_t and t."""

    def __init__(self, alphas_cumprod: torch.Tensor, channels: int = 3):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.alphas_cumprod = alphas_cumprod
        self.mix = torch.randn(2 * channels, channels, generator=generator, dtype=torch.float64)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha_bar = self.alphas_cumprod[t.round().long()].view(-1, 1, 1, 1)
        noise, variance = torch.tanh(torch.einsum("oc,bchw->bohw", self.mix, x_t)).chunk(2, dim=1)
        return torch.cat([(1 - alpha_bar).sqrt() * x_t + 0.1 * noise, variance], dim=1)


def test_the_learned_variance_sampler_is_improved_ddpms_on_a_shorter_chain(impl):
    """Through VPDenoiser(learned_variance=True) on 20 of DDPM's 1000 linear-beta steps, it draws (float64, the same
    noise) what DDPM's own sampler draws on Nichol & Dhariwal's shorter chain with the learned variance; with the
    variance output held at -1 (beta~) it is the ancestral sampler (eta = 1), draw for draw."""
    from minisora.diffusion.ddpm import ddpm_sample
    from minisora.diffusion.denoisers import VPDenoiser
    from minisora.diffusion.samplers import sample_euler_ancestral
    from minisora.diffusion.schedules import alphas_cumprod, linear_betas, respace_timesteps, sigmas_from_timesteps

    schedule = alphas_cumprod(linear_betas())
    network = TinyLearnedVarianceNetwork(schedule)
    timesteps = respace_timesteps(1000, 20)
    sigmas = sigmas_from_timesteps(schedule, timesteps)
    x_T = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    denoiser = VPDenoiser(network, schedule, learned_variance=True)
    with torch.no_grad():
        ours = impl.sample_ddpm_learned_variance(denoiser, x_T * (1 + sigmas[0] ** 2).sqrt(), sigmas,
                                                 generator=torch.Generator().manual_seed(2))
        kept = timesteps.flip(0)  # the shorter chain, in increasing time: its alpha_bar are the kept steps' own
        reference = ddpm_sample(lambda x, t: network(x, kept[t]), x_T, schedule[kept], variance="learned",
                                generator=torch.Generator().manual_seed(2))
    assert reference.abs().mean() > 0.1
    torch.testing.assert_close(ours, reference, rtol=1e-8, atol=1e-8)

    class LowestVariance:  # v = -1 everywhere: Sigma = beta~
        def with_variance(self, x, sigma):
            return denoiser(x, sigma), -torch.ones_like(x)

        def __call__(self, x, sigma):
            return denoiser(x, sigma)

    with torch.no_grad():
        lowest = impl.sample_ddpm_learned_variance(LowestVariance(), x_T * (1 + sigmas[0] ** 2).sqrt(), sigmas,
                                                   generator=torch.Generator().manual_seed(3))
        ancestral = sample_euler_ancestral(denoiser, x_T * (1 + sigmas[0] ** 2).sqrt(), sigmas,
                                           generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(lowest, ancestral, rtol=1e-8, atol=1e-8)
