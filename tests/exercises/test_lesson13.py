"""Lesson 13 checks (given frames held, the given-frames denoiser, long-video windows, the time shift of a bucket,
SDEdit's start), against minisora by default and your stubs with --impl=exercises."""
import math

import pytest
import torch

from minisora.data.buckets import Bucket

pytestmark = pytest.mark.lesson13


def test_given_frames_are_held_and_the_rest_is_the_denoisers(impl):
    denoised, given = torch.randn(2, 2, 3, 5, 4, 4, dtype=torch.float64)
    mask = torch.tensor([[True, False, False, False, True], [False, False, True, False, False]])
    held = impl.hold_given_frames(denoised.float(), given, mask)
    assert held.dtype == torch.float32
    for item in range(2):
        for frame in range(5):
            expected = (given if mask[item, frame] else denoised)[item, :, frame].float()
            assert torch.equal(held[item, :, frame], expected), (item, frame)


def test_the_given_frames_denoiser_shows_the_frames_only_to_a_network_trained_with_them(impl):
    seen = []

    def network(x, sigma, **cond):
        seen.append(sorted(cond))
        return torch.full_like(x, 5.0)

    x, given = torch.randn(2, 2, 3, 4, 2, 2)
    mask = torch.tensor([[True, False, False, True], [False, True, False, False]])
    for sees in (True, False):
        out = impl.given_frames_denoise(network, x, torch.ones(2), given, mask, sees, caption="a caption")
        for item in range(2):
            for frame in range(4):
                expected = given[item, :, frame] if mask[item, frame] else torch.full((3, 2, 2), 5.0)
                assert torch.equal(out[item, :, frame], expected), (sees, item, frame)
    assert seen == [["caption", "given", "given_mask"], ["caption"]]
    with pytest.raises(ValueError, match="given_mask"):
        impl.given_frames_denoise(network, x, torch.ones(2), given, mask[:, :3])
    with pytest.raises(ValueError, match="given"):
        impl.given_frames_denoise(network, x, torch.ones(2), given[:, :, :3], mask)


@torch.no_grad()
def test_sampling_through_the_given_frames_denoiser_follows_the_conditional_flow(impl):
    """Data whose generated frame is N(mu, s^2) once the given frame is known, and its exact denoiser: through Heun
    steps a generated frame follows the closed-form probability flow mu + (x_T - mu) sqrt((s^2 + sigma^2) /
    (s^2 + sigma_T^2)), and a given frame the line a + (sigma / sigma_T)(x_T - a), ending on a."""
    from minisora.diffusion.samplers import sample_heun
    from minisora.diffusion.schedules import karras_sigmas

    mu, s2 = 0.7, 0.2

    def exact(x, sigma, given, given_mask):
        sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1, 1)
        return mu + s2 / (s2 + sigma**2) * (x - mu)

    generator = torch.Generator().manual_seed(4)
    given = torch.randn(3, 1, 2, 2, 2, generator=generator, dtype=torch.float64)
    mask = torch.tensor([[True, False]] * 3)
    sigmas = karras_sigmas(400, sigma_min=1e-3, sigma_max=20.0).double()
    start = torch.randn(given.shape, generator=generator, dtype=torch.float64) * sigmas[0]
    out = sample_heun(lambda x, sigma, **cond: impl.given_frames_denoise(exact, x, sigma, **cond), start, sigmas,
                      cond={"given": given, "given_mask": mask})
    flow = mu + (start[:, :, 1] - mu) * (s2 / (s2 + sigmas[0] ** 2)) ** 0.5
    torch.testing.assert_close(out[:, :, 1], flow, rtol=0, atol=1e-4)
    torch.testing.assert_close(out[:, :, 0], given[:, :, 0], rtol=0, atol=1e-10)


def test_windows_cover_a_long_video_sharing_their_context(impl):
    assert impl.chunk_starts(8, 8, 4) == [0] and impl.chunk_starts(5, 8, 4) == [0]
    assert impl.chunk_starts(20, 8, 4) == [0, 4, 8, 12]
    assert impl.chunk_starts(18, 8, 4) == [0, 4, 8, 10]
    assert impl.chunk_starts(64, 16, 8) == list(range(0, 49, 8))
    assert impl.chunk_starts(18, 8, 4, backward=True) == [10, 6, 2, 0]
    for total in range(9, 40):
        starts = impl.chunk_starts(total, 8, 4)
        covered = set().union(*(range(start, start + 8) for start in starts))
        assert covered == set(range(total)) and starts[-1] == total - 8


def test_the_time_shift_follows_the_square_root_of_the_values(impl):
    reference = Bucket(16, 32, 32, 32)
    assert impl.shift_for(Bucket(16, 32, 32, 8), reference, 6.0) == pytest.approx(6.0)
    assert impl.shift_for(Bucket(4, 32, 32, 64), reference, 6.0) == pytest.approx(3.0)
    assert impl.shift_for(Bucket(16, 64, 64, 8), reference, 6.0) == pytest.approx(12.0)
    assert impl.shift_for(Bucket(1, 32, 32, 256), reference, 2.0) == 1.0


def test_sdedit_starts_where_the_flow_time_is_the_strength(impl):
    for strength in (0.1, 0.3, 0.5, 0.9):
        sigma = impl.edit_sigma(strength)
        assert sigma / (1 + sigma) == pytest.approx(strength)  # the linear path's t = sigma / (1 + sigma)
    assert impl.edit_sigma(1.0) == 80.0 and math.isclose(impl.edit_sigma(0.99), 80.0)
    for bad in (0.0, -0.2, 1.5):
        with pytest.raises(ValueError):
            impl.edit_sigma(bad)
