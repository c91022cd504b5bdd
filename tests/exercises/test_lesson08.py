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
