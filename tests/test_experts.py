"""eDiff-I's expert denoisers (Balaji et al. 2022): each item of a batch goes to the expert of its noise level, and
a batch that straddles the switch gives what each item would alone."""
import pytest
import torch
from torch import nn

from minisora.diffusion.experts import NoiseLevelExperts
from minisora.diffusion.guidance import GuidedDenoiser


class Affine(nn.Module):
    """A stand-in denoiser whose output names it: factor x + sigma + label."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x, sigma, label):
        return self.factor * x + sigma.view(-1, 1) + label.view(-1, 1).to(x.dtype)


def test_each_item_goes_to_the_expert_of_its_noise_level():
    high, low = Affine(2.0), Affine(-3.0)
    experts = NoiseLevelExperts(high, low, switch_sigma=0.2)
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.1, 5.0, 0.2, 0.05, 0.3])  # 0.2 itself belongs to the noisy end
    label = torch.tensor([1, 2, 3, 4, 5])
    mixed = experts(x, sigma, label=label)
    for item in range(5):
        expert = low if sigma[item] < 0.2 else high
        alone = expert(x[item:item + 1], sigma[item:item + 1], label=label[item:item + 1])
        assert torch.equal(mixed[item:item + 1], alone), item
    assert torch.equal(experts(x, torch.tensor(0.1), label=label), low(x, torch.full((5,), 0.1), label=label))
    assert torch.equal(experts(x, torch.full((5,), 1.0), label=label), high(x, torch.full((5,), 1.0), label=label))


def test_guidance_runs_on_the_experts_unchanged():
    experts = NoiseLevelExperts(Affine(2.0), Affine(-3.0), switch_sigma=0.2)
    x, sigma, label = torch.ones(2, 3), torch.tensor([0.1, 1.0]), torch.tensor([4, 4])
    guided = GuidedDenoiser(experts, 3.0, {"label": 0})(x, sigma, label=label)
    null = experts(x, sigma, label=torch.zeros(2, dtype=torch.long))
    # the stand-ins add the label, so guidance at scale w adds w times the label's 4
    assert torch.allclose(guided, null + 3.0 * 4)


def test_a_switch_that_is_not_a_noise_level_is_an_error():
    with pytest.raises(ValueError, match="switch_sigma.*-1"):
        NoiseLevelExperts(Affine(1.0), Affine(1.0), switch_sigma=-1.0)
