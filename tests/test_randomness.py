"""Noise drawn by the run's CPU generator, wherever the model is: the same seed trains the same way on any device."""
import pytest
import torch
from torch import nn

from minisora.diffusion.ddpm import ddpm_loss
from minisora.diffusion.schedules import alphas_cumprod, linear_betas
from minisora.randomness import rand, randint, randn
from minisora.diffusion.objectives import objective_loss, wrap_network


def test_draws_are_the_generator_stream():
    for draw, reference in ((lambda g: randn((4, 3), g), lambda g: torch.randn(4, 3, generator=g)),
                            (lambda g: rand((5,), g), lambda g: torch.rand(5, generator=g)),
                            (lambda g: randint(7, (6,), g), lambda g: torch.randint(7, (6,), generator=g))):
        assert torch.equal(draw(torch.Generator().manual_seed(3)), reference(torch.Generator().manual_seed(3)))
    assert randn((2, 2), torch.Generator().manual_seed(0), dtype=torch.float64).dtype == torch.float64


class Scale(nn.Module):
    """A one-parameter network, whatever its inputs: enough to see which noise a loss drew."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(0.7))

    def forward(self, x, noise_label, **cond):
        return self.weight * x


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: compares a loss on it with the CPU's")
@pytest.mark.parametrize("objective", ["edm", "flow", "ddpm"])
def test_losses_on_cuda_draw_the_cpu_generators_noise(objective):
    x0 = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(1))

    def loss_on(device):
        generator = torch.Generator().manual_seed(5)
        if objective == "ddpm":
            schedule = alphas_cumprod(linear_betas(100)).to(device)
            return ddpm_loss(Scale().to(device), x0.to(device), schedule, generator=generator).item()
        denoiser = wrap_network(Scale(), objective, "data").to(device)
        return objective_loss(denoiser, x0.to(device), objective, generator, "logit_normal").item()

    assert loss_on("cuda") == pytest.approx(loss_on("cpu"), rel=1e-5)
