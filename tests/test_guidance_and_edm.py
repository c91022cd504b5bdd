"""Classifier-free guidance on the exact class-conditional denoiser, and the EDM training loss."""
import pytest
import torch

from minisora.diffusion.edm import EDMDenoiser, edm_loss, edm_loss_weight, sample_training_sigmas
from minisora.diffusion.guidance import GuidedDenoiser, drop_condition, guided_denoise


def test_guided_denoiser_batches_the_two_passes(mixture):
    x, sigma = torch.randn(6, 2, dtype=torch.float64), torch.full((6,), 0.7, dtype=torch.float64)
    label = torch.tensor([0, 1, 2, 0, 1, 2])
    null = torch.full_like(label, mixture.num_components)
    conditional, unconditional = mixture.denoiser(x, sigma, label=label), mixture.denoiser(x, sigma, label=null)
    for scale in (0.0, 1.0, 4.0):
        guided = GuidedDenoiser(mixture.denoiser, scale, {"label": mixture.num_components})(x, sigma, label=label)
        torch.testing.assert_close(guided, unconditional + scale * (conditional - unconditional))


def test_guidance_applies_only_inside_its_interval(mixture):
    """Kynkaanniemi et al. 2024: inside (low, high] the guided extrapolation, outside it the conditional denoiser;
    items of one batch at different noise levels each get their own."""
    x = torch.randn(4, 2, dtype=torch.float64)
    sigma = torch.tensor([0.1, 0.5, 2.0, 9.0], dtype=torch.float64)
    label = torch.tensor([0, 1, 2, 0])
    null = torch.full_like(label, mixture.num_components)
    conditional, unconditional = mixture.denoiser(x, sigma, label=label), mixture.denoiser(x, sigma, label=null)
    guided = GuidedDenoiser(mixture.denoiser, 4.0, {"label": mixture.num_components}, interval=(0.5, 2.0))
    result = guided(x, sigma, label=label)
    torch.testing.assert_close(result[[0, 1, 3]], conditional[[0, 1, 3]])  # 0.5 is outside (low, high]
    torch.testing.assert_close(result[2], unconditional[2] + 4.0 * (conditional[2] - unconditional[2]))
    with pytest.raises(ValueError, match=r"low < high.*\(2.0, 1.0\)"):
        GuidedDenoiser(mixture.denoiser, 4.0, {"label": 3}, interval=(2.0, 1.0))


def test_guided_denoise_is_one_call_on_both_branches(mixture):
    """guided_denoise, which GuidedDenoiser runs: one denoiser call on 2B items (the conditional half first, the null
    condition second, a condition not in null_cond in both), one on B where no item is guided, and the guided
    extrapolation only inside (low, high]."""
    x, sigma = torch.randn(4, 2, dtype=torch.float64), torch.tensor([0.1, 0.5, 2.0, 9.0], dtype=torch.float64)
    label, shift = torch.tensor([0, 1, 2, 0]), torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64)
    calls = []

    def shifted(x, sigma, label, shift):  # a denoiser with a second, kept condition
        calls.append((len(x), label.tolist(), shift.tolist()))
        return mixture.denoiser(x, sigma, label=label) + shift[:, None]

    null = torch.full_like(label, mixture.num_components)
    conditional, unconditional = shifted(x, sigma, label, shift), shifted(x, sigma, null, shift)
    calls.clear()
    null_cond = {"label": mixture.num_components}
    result = guided_denoise(shifted, x, sigma, 4.0, null_cond, (0.5, 2.0), label=label, shift=shift)
    assert calls == [(8, label.tolist() + null.tolist(), shift.tolist() * 2)]
    torch.testing.assert_close(result[[0, 1, 3]], conditional[[0, 1, 3]])
    torch.testing.assert_close(result[2], unconditional[2] + 4.0 * (conditional[2] - unconditional[2]))
    everywhere = guided_denoise(shifted, x, sigma, 4.0, null_cond, label=label, shift=shift)
    batched = GuidedDenoiser(shifted, 4.0, null_cond, kept=["shift"])(x, sigma, label=label, shift=shift)
    torch.testing.assert_close(everywhere, batched)
    calls.clear()
    unguided = guided_denoise(shifted, x, sigma, 4.0, null_cond, (20.0, 30.0), label=label, shift=shift)
    torch.testing.assert_close(unguided, conditional)
    assert [call[0] for call in calls] == [4]
    with pytest.raises(ValueError, match=r"missing \['label'\]"):
        guided_denoise(shifted, x, sigma, 4.0, {"label": 3}, shift=shift)


def test_captions_are_dropped_whole_and_labels_draw_the_same_numbers():
    """A caption (B, M) is replaced by the null caption as a whole, never word by word; which items drop is the same
    for labels and captions drawn with the same seed."""
    captions = torch.arange(1, 1 + 400 * 5).reshape(400, 5)
    dropped = drop_condition(captions, 0.3, 0, torch.Generator().manual_seed(4))
    whole = (dropped == 0).all(dim=1)
    assert torch.equal(dropped[~whole], captions[~whole]) and 0.2 < whole.float().mean() < 0.4
    labels = drop_condition(torch.arange(1, 401), 0.3, 0, torch.Generator().manual_seed(4))
    assert torch.equal(labels == 0, whole)


def test_guidance_sharpens_the_class(mixture):
    """With the exact conditional model, guidance scale > 1 pushes samples away from the other classes."""
    from minisora.diffusion.samplers import sample_heun
    from minisora.diffusion.schedules import karras_sigmas

    sigmas = karras_sigmas(30).double()
    x = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * sigmas[0]
    label = torch.zeros(2000, dtype=torch.long)
    distances = {}
    for scale in (1.0, 4.0):
        guided = GuidedDenoiser(mixture.denoiser, scale, {"label": mixture.num_components})
        samples = sample_heun(guided, x, sigmas, cond={"label": label})
        distances[scale] = float((samples - mixture.means[1:].mean(0)).norm(dim=1).mean())
    assert distances[4.0] > distances[1.0] + 0.1


def test_guidance_needs_a_condition(mixture):
    with pytest.raises(ValueError, match="null condition"):
        GuidedDenoiser(mixture.denoiser, 3.0, {})
    guided = GuidedDenoiser(mixture.denoiser, 3.0, {"label": 3})
    with pytest.raises(ValueError, match="conditional model"):
        guided(torch.zeros(2, 2), torch.ones(2))


def test_guiding_some_channels_leaves_the_others_conditional(mixture):
    """channels=1 guides the first coordinate of the 2-D mixture and leaves the second at the conditional
    denoiser's; a count that is not a positive number of channels, or more than x has, is a clear error."""
    x, label = torch.randn(64, 2, dtype=torch.float64), torch.ones(64).long()
    sigma = torch.full((64,), 1.5, dtype=torch.float64)
    null = {"label": mixture.num_components}
    full = GuidedDenoiser(mixture.denoiser, 4.0, null)(x, sigma, label=label)
    first = GuidedDenoiser(mixture.denoiser, 4.0, null, channels=1)(x, sigma, label=label)
    conditional = mixture.denoiser(x, sigma, label=label)
    torch.testing.assert_close(first[:, 0], full[:, 0])
    torch.testing.assert_close(first[:, 1], conditional[:, 1])
    assert (full[:, 1] - conditional[:, 1]).abs().max() > 1e-2
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="positive number of leading channels"):
            GuidedDenoiser(mixture.denoiser, 4.0, null, channels=bad)
    with pytest.raises(ValueError, match="first 3 channels of x with 2"):
        GuidedDenoiser(mixture.denoiser, 4.0, null, channels=3)(x, sigma, label=label)


def test_training_sigmas_are_log_normal():
    sigma = sample_training_sigmas(200_000, generator=torch.Generator().manual_seed(0))
    assert abs(sigma.log().mean().item() + 1.2) < 0.01 and abs(sigma.log().std().item() - 1.2) < 0.01


def test_edm_loss_of_the_ideal_denoiser_is_the_bayes_error(mixture):
    """The ideal denoiser reaches a lower EDM loss than a perturbed one: the loss is minimised by E[x_0 | x]."""
    x0 = mixture.sample(50_000, torch.Generator().manual_seed(0)).double()
    ideal = edm_loss(mixture.denoiser, x0, generator=torch.Generator().manual_seed(1))
    shrunk = edm_loss(lambda x, sigma: 0.9 * mixture.denoiser(x, sigma), x0, generator=torch.Generator().manual_seed(1))
    assert ideal < shrunk
    # weight lambda(sigma) = 1 / c_out^2 (Table 1): with c_out = sigma sigma_data / sqrt(sigma^2 + sigma_data^2)
    sigma = torch.tensor([0.1, 1.0, 10.0])
    c_out = sigma * 0.5 / (sigma**2 + 0.25).sqrt()
    torch.testing.assert_close(edm_loss_weight(sigma), 1 / c_out**2)


def test_edm_loss_takes_another_weighting(mixture):
    """loss_weight replaces lambda(sigma): with ones it is the plain denoising loss of Eq. 2, recomputed here from the
    same draws (the sigmas first, then the noise), and the default is edm_loss_weight."""
    x0 = mixture.sample(256, torch.Generator().manual_seed(0)).double()
    shrunk = lambda x, sigma: 0.9 * mixture.denoiser(x, sigma)  # noqa: E731
    unweighted = edm_loss(shrunk, x0, generator=torch.Generator().manual_seed(1),
                          loss_weight=lambda sigma, sigma_data: torch.ones_like(sigma))
    generator = torch.Generator().manual_seed(1)
    sigma = sample_training_sigmas(256, generator=generator).double()
    noisy = x0 + sigma[:, None] * torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(unweighted, ((shrunk(noisy, sigma) - x0) ** 2).mean())
    weighted = ((shrunk(noisy, sigma) - x0) ** 2 * edm_loss_weight(sigma)[:, None]).mean()
    torch.testing.assert_close(edm_loss(shrunk, x0, generator=torch.Generator().manual_seed(1)), weighted)
    assert abs(float(weighted - unweighted)) > 0.1 * float(unweighted)


def test_edm_denoiser_with_a_zero_network_is_the_skip_connection():
    zero = lambda x, noise: torch.zeros_like(x)  # noqa: E731
    x, sigma = torch.randn(3, 2), torch.tensor([0.1, 0.5, 2.0])
    expected = 0.25 / (sigma**2 + 0.25)
    torch.testing.assert_close(EDMDenoiser(zero)(x, sigma), expected[:, None] * x)
