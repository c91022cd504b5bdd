"""Lesson 08 checks (DiT), against minisora by default and your stubs with --impl=exercises."""
import pytest
import torch

from minisora.models.dit import CONDITIONINGS, DiTBlock, DiTConfig, dit_config, forward_gflops

pytestmark = pytest.mark.lesson08


def test_modulate_scales_and_shifts_every_token_of_a_sample_alike(impl):
    x, shift, scale = torch.randn(2, 5, 3), torch.randn(2, 3), torch.randn(2, 3)
    out = impl.modulate(x, shift, scale)
    for b in range(2):
        for n in range(5):
            torch.testing.assert_close(out[b, n], x[b, n] * (1 + scale[b]) + shift[b])
    torch.testing.assert_close(impl.modulate(x, torch.zeros(2, 3), torch.zeros(2, 3)), x)


def _random_block(dim=32, heads=4):
    """A DiT block whose modulation is random, not zero, so that every shift, scale and gate matters (float64)."""
    torch.manual_seed(0)
    block = DiTBlock(DiTConfig(hidden=dim, heads=heads, depth=1)).double()
    torch.nn.init.normal_(block.modulation[1].weight, std=0.3)
    torch.nn.init.normal_(block.modulation[1].bias, std=0.3)
    return block


def test_adaln_zero_block_is_section_3_2_written_out(impl):
    """Against the paper's equations by hand, sample by sample in float64: the six vectors Linear(SiLU(c)) in the
    order (shift, scale, gate) x (attention, MLP), LayerNorm as (h - mean) / sqrt(var + 1e-6), the MLP on the tokens
    the attention left."""
    dim = 32
    block = _random_block(dim)
    x, c = torch.randn(3, 7, dim, dtype=torch.float64), torch.randn(3, dim, dtype=torch.float64)

    def layer_norm(h):
        return (h - h.mean(-1, keepdim=True)) / (h.var(-1, unbiased=False, keepdim=True) + 1e-6).sqrt()

    with torch.no_grad():
        out = impl.adaln_zero_block(block, x, c)
        assert out.shape == x.shape
        for b in range(3):
            vectors = block.modulation[1].weight @ torch.nn.functional.silu(c[b]) + block.modulation[1].bias
            shift1, scale1, gate1, shift2, scale2, gate2 = vectors.split(dim)
            h = x[b:b + 1]
            h = h + gate1 * block.attention(layer_norm(h) * (1 + scale1) + shift1)
            h = h + gate2 * block.mlp(layer_norm(h) * (1 + scale2) + shift2)
            torch.testing.assert_close(out[b:b + 1], h, rtol=1e-10, atol=1e-10)


def test_adaln_zero_block_with_zero_gates_is_the_identity_whatever_the_shifts_and_scales(impl):
    dim = 32
    block = _random_block(dim)
    with torch.no_grad():
        for gate in (slice(2 * dim, 3 * dim), slice(5 * dim, 6 * dim)):  # the gates' rows of the regression
            block.modulation[1].weight[gate] = 0
            block.modulation[1].bias[gate] = 0
        x, c = torch.randn(2, 5, dim, dtype=torch.float64), torch.randn(2, dim, dtype=torch.float64)
        assert torch.equal(impl.adaln_zero_block(block, x, c), x)
        block.modulation[1].bias[2 * dim] = 1.0  # one channel of the attention's gate open: only that channel moves
        moved = impl.adaln_zero_block(block, x, c) - x
    assert moved[..., 0].abs().max() > 1e-3 and torch.equal(moved[..., 1:], torch.zeros_like(moved[..., 1:]))


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
