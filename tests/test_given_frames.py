"""Given frames (image-to-video, extension, interpolation, loops): the video DiT at any size, the two ways of marking
given frames, the denoiser that holds them through every sampler, guidance that keeps them, the training masks."""
import pytest
import torch

from minisora.diffusion import SAMPLERS, get_sampler
from minisora.diffusion.conditioning import (TASKS, GivenFramesDenoiser, draw_given_masks, given_frames_denoise,
                                             hold_given_frames, parse_task_mix)
from minisora.diffusion.edm import EDMDenoiser
from minisora.diffusion.flow import FlowDenoiser, Path, flow_matching_loss
from minisora.diffusion.guidance import GuidedDenoiser
from minisora.diffusion.schedules import karras_sigmas
from minisora.models.embeddings import sincos_position_embedding
from minisora.models.text import PAD, CaptionTokenizer
from minisora.models.video_dit import VideoDiT, VideoDiTConfig

CAPTIONS = ["a red circle moving left", "a blue square moving up"]
TOKENIZER = CaptionTokenizer.from_captions(CAPTIONS)


def small_model(seed=0, **fields) -> VideoDiT:
    base = dict(in_channels=3, patch_size=2, temporal_patch=2, hidden=32, depth=2, heads=2, rotary=True,
                vocabulary_size=len(TOKENIZER), caption_length=8, text_hidden=32, text_depth=1)
    torch.manual_seed(seed)
    model = VideoDiT(VideoDiTConfig(**{**base, **fields}))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # adaLN-Zero and the mask embedding start at zero: give them values to see through
        for parameter in model.parameters():
            if parameter.abs().max() == 0:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return model.double().eval()


def captions(batch):
    return TOKENIZER.encode((CAPTIONS * batch)[:batch], 8)


@torch.no_grad()
def test_one_model_takes_any_frame_count_height_and_width():
    """No size in the weights: the same model runs on images and clips of several sizes and aspect ratios, a size
    run again gives the same numbers (the position tables are cached per size, not overwritten), and its positions
    are the sin-cos table of that size's grid."""
    model = small_model()
    assert not any("position" in name for name in model.state_dict() if not name.startswith("text_encoder"))
    outputs = {}
    for shape in [(1, 8, 8), (4, 8, 8), (5, 8, 12), (6, 12, 8), (4, 8, 8)]:
        x = torch.randn(2, 3, *shape, generator=torch.Generator().manual_seed(sum(shape)), dtype=torch.float64)
        out = model(x, torch.full((2,), 0.3, dtype=torch.float64), captions(2))
        assert out.shape == x.shape and torch.isfinite(out).all()
        if shape in outputs:
            assert torch.equal(out, outputs[shape])
        outputs[shape] = out
    torch.testing.assert_close(model.table("position", (3, 4, 6), torch.device("cpu")),
                               sincos_position_embedding((3, 4, 6), 32, 8)[None])


@torch.no_grad()
def test_a_frame_count_the_temporal_patch_does_not_divide_starts_with_the_first_frame_alone():
    """Under a 2-frame patch, a 3-frame clip is the 4-frame clip whose frame 0 is repeated, less that copy: its
    first frame has a patch to itself, as an image (one frame) does."""
    model = small_model()
    x = torch.randn(2, 3, 3, 8, 8, dtype=torch.float64)
    padded = torch.cat([x[:, :, :1], x], dim=2)
    noise_label = torch.full((2,), 0.7, dtype=torch.float64)
    torch.testing.assert_close(model(x, noise_label, captions(2)), model(padded, noise_label, captions(2))[:, :, 1:],
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("marking", ["none", "mask_channel", "noise_level"])
@torch.no_grad()
def test_given_frames_enter_clean_whatever_the_noisy_input_holds_there(marking):
    model = small_model(frame_marking=marking)
    x, given = torch.randn(2, 2, 3, 4, 8, 8, dtype=torch.float64)
    mask = torch.tensor([[True, False, False, True], [True, True, False, False]])
    other = torch.where(mask[:, None, :, None, None], torch.randn_like(x), x)  # different only at given frames
    label = torch.full((2,), 0.5, dtype=torch.float64)
    first = model(x, label, captions(2), given=given, given_mask=mask)
    torch.testing.assert_close(model(other, label, captions(2), given=given, given_mask=mask), first, rtol=0,
                               atol=1e-12)
    if marking == "none":  # then the frames are only put in place: the same as writing them into x
        torch.testing.assert_close(model(torch.where(mask[:, None, :, None, None], given, x), label, captions(2)),
                                   first, rtol=0, atol=1e-12)


@torch.no_grad()
def test_the_mask_channel_starts_at_zero_and_then_tells_given_frames_apart():
    """Zero-initialised, a fresh model's mask channel changes nothing (training starts from the text-to-video
    model's behaviour); with weights, the same clean input with other frames marked gives other outputs."""
    torch.manual_seed(0)
    fresh = VideoDiT(VideoDiTConfig(in_channels=3, patch_size=2, temporal_patch=2, hidden=32, depth=1, heads=2,
                                    frame_marking="mask_channel"))
    assert fresh.mask_embedding.weight.abs().max() == 0 and fresh.mask_embedding.bias.abs().max() == 0
    model = small_model(frame_marking="mask_channel")
    x = torch.randn(1, 3, 4, 8, 8, dtype=torch.float64)
    label = torch.full((1,), 0.5, dtype=torch.float64)
    first_given = model(x, label, captions(1), given=x, given_mask=torch.tensor([[True, False, False, False]]))
    none_given = model(x, label, captions(1), given=x, given_mask=torch.zeros(1, 4, dtype=torch.bool))
    assert (first_given - none_given).abs().max() > 1e-3


@torch.no_grad()
def test_noise_level_marking_runs_fully_given_tokens_at_noise_level_zero():
    """With every frame given, the "noise_level" marking is the model asked at noise label 0 everywhere; with the
    first two frames given (one 2-frame patch), those tokens' modulation is label 0's and the rest the sample's."""
    model = small_model(frame_marking="noise_level")
    x = torch.randn(1, 3, 4, 8, 8, dtype=torch.float64)
    label = torch.full((1,), 0.6, dtype=torch.float64)
    everything = model(x, label, captions(1), given=x, given_mask=torch.ones(1, 4, dtype=torch.bool))
    torch.testing.assert_close(everything, model(x, torch.zeros(1, dtype=torch.float64), captions(1)), rtol=0,
                               atol=1e-12)
    head = model(x, label, captions(1), given=x, given_mask=torch.tensor([[True, True, False, False]]))
    assert (head - model(x, label, captions(1))).abs().max() > 1e-3


def denoiser_of(kind: str, model: VideoDiT):
    if kind == "flow":
        return FlowDenoiser(model, Path("linear"), "data")
    return EDMDenoiser(model, sigma_data=0.5)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
@torch.no_grad()
def test_every_sampler_returns_the_given_frames_unchanged(sampler):
    """Behind GivenFramesDenoiser, with guidance that keeps the frames, every sampler ends on the given frames
    (float64: within 1e-9) and generates the others (not copies of the given ones)."""
    kind = "flow" if sampler.startswith("flow") else "edm"
    model = small_model(frame_marking="mask_channel", noise_label_scale=1000.0 if kind == "flow" else 250.0)
    denoiser = GuidedDenoiser(GivenFramesDenoiser(denoiser_of(kind, model)), 3.0, {"caption": PAD},
                              kept=("given", "given_mask"))
    given = torch.rand(2, 3, 5, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    mask = torch.tensor([[True, False, False, False, False], [True, False, False, False, True]])
    sigmas = karras_sigmas(6).double()
    noise = torch.randn(given.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * sigmas[0]
    out = get_sampler(sampler)(denoiser, noise, sigmas, cond={"caption": captions(2), "given": given,
                                                              "given_mask": mask},
                               generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(out[0, :, 0], given[0, :, 0], rtol=0, atol=1e-9)
    torch.testing.assert_close(out[1][:, [0, 4]], given[1][:, [0, 4]], rtol=0, atol=1e-9)
    assert (out[0, :, 1:] - given[0, :, 1:]).abs().mean() > 0.05


def test_guidance_keeps_the_frames_in_the_unconditional_branch_and_drops_the_caption():
    seen = []

    def recorder(x, sigma, caption, given, given_mask):
        seen.append((caption.clone(), given.clone(), given_mask.clone()))
        return x * 0

    x, given = torch.randn(2, 2, 3, 4, 8, 8)
    mask = torch.tensor([[True, False, False, False], [False, False, False, True]])
    GuidedDenoiser(recorder, 2.0, {"caption": PAD}, kept=("given", "given_mask"))(
        x, torch.ones(2), caption=captions(2), given=given, given_mask=mask)
    caption, both_given, both_masks = seen[0]
    assert (caption[2:] == PAD).all() and torch.equal(caption[:2], captions(2))
    assert torch.equal(both_given, torch.cat([given, given])) and torch.equal(both_masks, torch.cat([mask, mask]))
    with pytest.raises(ValueError, match="null condition names"):  # not kept: it must have a null value
        GuidedDenoiser(recorder, 2.0, {"caption": PAD})(x, torch.ones(2), caption=captions(2), given=given,
                                                        given_mask=mask)
    with pytest.raises(ValueError, match="guidance scale must be a finite number >= 0"):
        GuidedDenoiser(recorder, -3.0, {"caption": PAD})


def test_a_network_never_trained_on_given_frames_gets_them_held_all_the_same():
    def network_without_frames(x, sigma, caption):
        return torch.zeros_like(x)

    x, given = torch.randn(2, 1, 3, 4, 8, 8)
    mask = torch.tensor([[False, True, False, False]])
    out = GivenFramesDenoiser(network_without_frames, network_sees_frames=False)(x, torch.ones(1), caption=None,
                                                                                given=given, given_mask=mask)
    assert torch.equal(out, hold_given_frames(torch.zeros_like(x), given, mask))
    with pytest.raises(ValueError, match="given_mask"):
        GivenFramesDenoiser(network_without_frames)(x, torch.ones(1), given=given, given_mask=mask[:, :3])


def conditional_gaussian_denoiser(mean_of_b, variance_of_b):
    """The exact x_0 estimate of data whose generated frames are N(mean_of_b, variance_of_b) per value once the
    given frames are known: mean + s^2 / (s^2 + sigma^2) (x - mean), per frame (a network trained with the frames)."""
    def denoiser(x, sigma, given, given_mask):
        sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1, 1)
        return mean_of_b + variance_of_b / (variance_of_b + sigma**2) * (x - mean_of_b)
    return denoiser


@torch.no_grad()
def test_the_given_frames_denoiser_samples_the_exact_conditional_along_its_closed_form():
    """Through Heun steps in sigma, a denoiser that is exact for p(b | given) carries a generated frame along the
    conditional probability flow's closed form x(sigma) = mu + (x_T - mu) sqrt(s^2 + sigma^2) / sqrt(s^2 + sigma_T^2)
    (to Heun's error), while a given frame, whose x_0 is held at a, follows the straight line
    x(sigma) = a + (sigma / sigma_T)(x_T - a), which Heun integrates exactly: the replacement method's noised copy."""
    from minisora.diffusion.samplers import sample_heun

    mean_of_b, variance_of_b = 0.7, 0.2
    generator = torch.Generator().manual_seed(4)
    given = torch.randn(3, 1, 2, 2, 2, generator=generator, dtype=torch.float64)
    mask = torch.tensor([[True, False]] * 3)
    sigmas = karras_sigmas(400, sigma_min=1e-3, sigma_max=20.0).double()
    start = torch.randn(given.shape, generator=generator, dtype=torch.float64) * sigmas[0]
    states = []
    denoiser = conditional_gaussian_denoiser(mean_of_b, variance_of_b)
    out = sample_heun(lambda x, sigma, **cond: given_frames_denoise(denoiser, x, sigma, **cond), start, sigmas,
                       cond={"given": given, "given_mask": mask}, callback=lambda info: states.append(info["x"]))
    for i, state in enumerate(states):  # the state after step i, at sigma_{i+1}
        torch.testing.assert_close(state[:, :, 0], given[:, :, 0] + sigmas[i + 1] / sigmas[0] * (start - given)[:, :, 0],
                                   rtol=0, atol=1e-10)
    flow = mean_of_b + (start[:, :, 1] - mean_of_b) * (variance_of_b / (variance_of_b + sigmas[0] ** 2)) ** 0.5
    torch.testing.assert_close(out[:, :, 1], flow, rtol=0, atol=1e-4)
    torch.testing.assert_close(out[:, :, 0], given[:, :, 0], rtol=0, atol=1e-10)


def test_the_given_frames_denoiser_shows_the_frames_only_to_a_network_trained_with_them():
    seen = []

    def recorder(x, sigma, **cond):
        seen.append(sorted(cond))
        return torch.full_like(x, 5.0)

    x, given = torch.randn(2, 2, 3, 4, 2, 2)
    mask = torch.tensor([[True, False, False, True], [False, True, False, False]])
    for sees in (True, False):
        out = given_frames_denoise(recorder, x, torch.ones(2), given, mask, sees, caption=None)
        expected = torch.stack([torch.stack([given[b, :, t] if mask[b, t] else torch.full((3, 2, 2), 5.0)
                                             for t in range(4)], dim=1) for b in range(2)])
        assert torch.equal(out, expected)
    assert seen == [["caption", "given", "given_mask"], ["caption"]]
    with pytest.raises(ValueError, match=r"`given_mask` \(B, T\) = \(2, 4\)"):
        given_frames_denoise(recorder, x, torch.ones(2), given, mask[:1], True)


def test_training_masks_follow_the_task_mix():
    mix = parse_task_mix("text:2,first:1,first_last:1,head:1,tail:1,random:1,last:1")
    assert mix["text"] == pytest.approx(0.25) and set(mix) == set(TASKS)
    masks = draw_given_masks(4000, 8, mix, torch.Generator().manual_seed(0))
    given = masks.sum(dim=1)
    assert (given == 0).float().mean() == pytest.approx(0.25, abs=0.03)  # text: nothing given
    only_first = masks[:, 0] & (given == 1)
    assert only_first.float().mean() == pytest.approx(1 / 8 + 1 / 8 / 4, abs=0.03)  # first, and head with k = 1
    assert (given < 8).all(), "every sample has a frame to generate"
    positions = torch.arange(8)
    for task, expected in [("head", lambda k: positions < k), ("tail", lambda k: positions >= 8 - k)]:
        for row in draw_given_masks(200, 8, {task: 1.0}, torch.Generator().manual_seed(1)):
            k = int(row.sum())
            assert 1 <= k <= 4 and torch.equal(row, expected(k)), (task, row)
    loops = draw_given_masks(10, 8, {"first_last": 1.0})
    assert loops[:, [0, -1]].all() and not loops[:, 1:-1].any()
    assert not draw_given_masks(16, 1, mix).any(), "an image has nothing to condition on"
    for bad in ["", "text:-1", "text:1,paint:1", "text:x", "text:0"]:
        with pytest.raises(ValueError, match="task mix"):
            parse_task_mix(bad)


def test_the_loss_leaves_given_frames_out():
    """The gradient of the flow loss reaches the network's output only at generated frames, and the loss is the
    mean over those elements alone."""
    x0 = torch.randn(2, 3, 4, 8, 8)
    output = torch.randn(2, 3, 4, 8, 8, requires_grad=True)
    mask = torch.tensor([[True, False, False, False], [True, True, False, False]])
    generated = (~mask)[:, None, :, None, None].float()
    loss = flow_matching_loss(lambda x_t, t: output, x0, Path("linear"), "data", loss_mask=generated,
                              generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert (output.grad[:, :, 0] == 0).all() and (output.grad[1, :, 1] == 0).all()
    assert (output.grad[0, :, 1:] != 0).all() and (output.grad[1, :, 2:] != 0).all()
    unmasked = flow_matching_loss(lambda x_t, t: output, x0, Path("linear"), "data",
                                  generator=torch.Generator().manual_seed(0))
    assert not torch.isclose(loss, unmasked)
