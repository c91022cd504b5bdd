"""Lesson 05 checks (classifier-free guidance), run against minisora by default, against your stubs with
--impl=exercises and against the worked solutions with --impl=solutions.

The guided outputs are held, in float64, to the score of the tilted noisy density p_sigma(x | c)^w p_sigma(x)^(1 - w)
of the lesson's ring of Gaussians, computed independently of the ring's denoiser: its closed-form log-density (a
mixture of Gaussians in torch.distributions) differentiated by autograd, turned into an x_0 estimate by Tweedie's
formula D = x + sigma^2 grad log p. Condition dropout is replayed on the same generator."""
import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from minisora.diffusion.samplers import sample_heun
from minisora.diffusion.schedules import karras_sigmas
from tiny_datasets.toy2d import ring_of_gaussians

pytestmark = pytest.mark.lesson05

RING = ring_of_gaussians(num_components=8, radius=2.0, std=0.3)
NULL = RING.num_components  # label 8: no label


def tilted_denoiser(x: torch.Tensor, sigma: torch.Tensor, label: torch.Tensor, scale: float) -> torch.Tensor:
    """x + sigma^2 grad log [p_sigma(x | label)^w p_sigma(x)^(1 - w)] for each row, from the closed-form densities."""
    x = x.detach().clone().requires_grad_(True)
    eye = torch.eye(2, dtype=torch.float64)
    noisy_covariances = RING.covariances[None] + sigma[:, None, None, None] ** 2 * eye  # (B, K, 2, 2)
    components = MultivariateNormal(RING.means[None].expand(len(x), -1, -1), noisy_covariances)
    log_unconditional = MixtureSameFamily(Categorical(RING.weights.expand(len(x), -1)), components).log_prob(x)
    log_conditional = components.log_prob(x[:, None, :]).gather(1, label[:, None])[:, 0]
    log_tilted = scale * log_conditional + (1 - scale) * log_unconditional
    (score,) = torch.autograd.grad(log_tilted.sum(), x)
    return (x + sigma[:, None] ** 2 * score).detach()


def points_and_levels(n: int = 8, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = 2.5 * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    sigma = torch.tensor([0.05, 0.2, 0.5, 0.9, 1.5, 3.0, 8.0, 40.0], dtype=torch.float64)[:n]
    label = torch.randint(0, NULL, (n,), generator=generator)
    return x, sigma, label


def test_guidance_interpolates_and_extrapolates(impl):
    conditional, unconditional = torch.randn(4, 2), torch.randn(4, 2)
    torch.testing.assert_close(impl.classifier_free_guidance(conditional, unconditional, 1.0), conditional)
    torch.testing.assert_close(impl.classifier_free_guidance(conditional, unconditional, 0.0), unconditional)
    torch.testing.assert_close(impl.classifier_free_guidance(conditional, unconditional, 3.0),
                               3 * conditional - 2 * unconditional)


def test_guidance_of_the_exact_denoisers_follows_the_tilted_score(impl):
    """Section 1: guiding the exact conditional and unconditional denoisers gives the x_0 estimate of the tilted
    noisy density, at every noise level, for w below, at and above 1; a tensor of one w per item broadcasts."""
    x, sigma, label = points_and_levels()
    conditional = RING.denoiser(x, sigma, label=label)
    unconditional = RING.denoiser(x, sigma, label=torch.full_like(label, NULL))
    for scale in (0.0, 0.5, 2.0, 4.0):
        guided = impl.classifier_free_guidance(conditional, unconditional, scale)
        torch.testing.assert_close(guided, tilted_denoiser(x, sigma, label, scale), rtol=1e-9, atol=1e-9)
    per_item = torch.tensor([1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    guided = impl.classifier_free_guidance(conditional, unconditional, per_item[:, None])
    for row, scale in enumerate(per_item.tolist()):
        expected = tilted_denoiser(x[row:row + 1], sigma[row:row + 1], label[row:row + 1], scale)
        torch.testing.assert_close(guided[row:row + 1], expected, rtol=1e-9, atol=1e-9)


def test_guided_denoise_is_the_denoiser_of_the_tilted_density(impl):
    """Section 2: the guided denoiser built on the ring's exact denoiser, items at several noise levels in a batch."""
    x, sigma, label = points_and_levels(seed=1)
    for scale in (0.0, 2.0, 4.0):
        guided = impl.guided_denoise(RING.denoiser, x, sigma, scale, {"label": NULL}, label=label)
        assert guided.shape == x.shape and guided.dtype == x.dtype
        torch.testing.assert_close(guided, tilted_denoiser(x, sigma, label, scale), rtol=1e-9, atol=1e-9)


def test_guided_denoise_guides_only_inside_its_interval(impl):
    """Kynkäänniemi et al. 2024: inside (low, high] the guided estimate, outside it (0.5 is outside (0.5, 3.0]) the
    conditional denoiser's."""
    x, sigma, label = points_and_levels(seed=2)
    guided = impl.guided_denoise(RING.denoiser, x, sigma, 4.0, {"label": NULL}, (0.5, 3.0), label=label)
    inside = (sigma > 0.5) & (sigma <= 3.0)
    assert inside.tolist() == [False, False, False, True, True, True, False, False]
    torch.testing.assert_close(guided[inside], tilted_denoiser(x, sigma, label, 4.0)[inside], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(guided[~inside], tilted_denoiser(x, sigma, label, 1.0)[~inside], rtol=1e-9, atol=1e-9)
    nowhere = impl.guided_denoise(RING.denoiser, x, sigma, 4.0, {"label": NULL}, (100.0, 200.0), label=label)
    torch.testing.assert_close(nowhere, RING.denoiser(x, sigma, label=label), rtol=1e-9, atol=1e-9)


def test_guided_denoise_calls_the_denoiser_once_on_both_branches(impl):
    """One call on 2B items: the given labels then the null label, x and sigma twice, and a condition that is not
    guided (here a shift added to the output) the same in both halves."""
    x, sigma, label = points_and_levels(n=4, seed=3)
    shift = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64)
    calls = []

    def shifted(x, sigma, label, shift):
        calls.append({"x": x.clone(), "sigma": sigma.clone(), "label": label.clone(), "shift": shift.clone()})
        return RING.denoiser(x, sigma, label=label) + shift[:, None]

    guided = impl.guided_denoise(shifted, x, sigma, 3.0, {"label": NULL}, label=label, shift=shift)
    assert len(calls) == 1, f"the denoiser was called {len(calls)} times; run both branches as one batch"
    call = calls[0]
    assert call["label"].tolist() == label.tolist() + [NULL] * 4
    assert torch.equal(call["x"], torch.cat([x, x])) and torch.equal(call["sigma"], torch.cat([sigma, sigma]))
    assert torch.equal(call["shift"], torch.cat([shift, shift]))
    torch.testing.assert_close(guided, tilted_denoiser(x, sigma, label, 3.0) + shift[:, None], rtol=1e-9, atol=1e-9)


def test_guided_sampling_with_guided_denoise_sharpens_the_class(impl):
    """End to end with Heun on the exact denoiser: at w = 1 the samples are class 0's Gaussian, mean (2, 0) and std 0.3
    (3 standard errors at 2000 points: 0.02 on the mean, 0.014 on the std; the limits leave room for 40 Heun steps);
    at w = 4 they move out along the class's direction, away from the other classes (mean x about 2.6), and narrow
    (std about 0.18 and 0.08)."""
    sigmas = karras_sigmas(40).double()
    noise = torch.randn(2000, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * sigmas[0]
    label = torch.zeros(2000, dtype=torch.long)
    samples = {}
    for scale in (1.0, 4.0):
        def guided(x, sigma, label, scale=scale):
            return impl.guided_denoise(RING.denoiser, x, sigma, scale, {"label": NULL}, label=label)
        samples[scale] = sample_heun(guided, noise, sigmas, cond={"label": label})
    assert (samples[1.0].mean(0) - RING.means[0]).abs().max() < 0.03
    assert (samples[1.0].std(0) - 0.3).abs().max() < 0.02
    assert samples[4.0][:, 0].mean() > 2.3 and samples[4.0].std(0).max() < 0.25


def test_drop_condition_replaces_about_the_asked_fraction(impl):
    labels = torch.randint(0, 10, (100_000,), generator=torch.Generator().manual_seed(0))
    dropped = impl.drop_condition(labels, 0.2, 10, torch.Generator().manual_seed(1))
    replaced = dropped == 10
    assert abs(replaced.float().mean().item() - 0.2) < 0.01
    assert torch.equal(dropped[~replaced], labels[~replaced])
    assert torch.equal(impl.drop_condition(labels, 0.0, 10), labels)
    assert bool((impl.drop_condition(labels, 1.0, 10) == 10).all())


def test_drop_condition_draws_one_number_per_item_and_drops_captions_whole(impl):
    """Replayed on the same generator: item i is dropped where torch.rand(B)[i] < p; a caption (B, M) is replaced
    whole, with the same items dropped as labels drawn with the same seed; a probability outside [0, 1] is refused."""
    labels = torch.arange(1, 501)
    dropped = impl.drop_condition(labels, 0.3, 0, torch.Generator().manual_seed(7))
    expected = torch.rand(500, generator=torch.Generator().manual_seed(7)) < 0.3
    assert torch.equal(dropped == 0, expected) and torch.equal(dropped[~expected], labels[~expected])
    captions = torch.arange(1, 1 + 500 * 5).reshape(500, 5)
    dropped_captions = impl.drop_condition(captions, 0.3, 0, torch.Generator().manual_seed(7))
    assert torch.equal((dropped_captions == 0).all(dim=1), expected)
    assert torch.equal(dropped_captions[~expected], captions[~expected])
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError):
            impl.drop_condition(labels, bad, 0)
