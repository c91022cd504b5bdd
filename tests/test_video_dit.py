"""The video DiT: attention layouts and their receptive fields, text conditioning, and the denoiser interface."""
import pytest
import torch

from minisora.diffusion import get_sampler
from minisora.diffusion.edm import EDMDenoiser
from minisora.diffusion.flow import FlowDenoiser, Path
from minisora.diffusion.guidance import GuidedDenoiser
from minisora.diffusion.schedules import karras_sigmas
from minisora.models.text import CAPTION, PAD, UNKNOWN, CaptionTokenizer
from minisora.models.embeddings import rotary_angles
from minisora.models.video_dit import (LAYOUTS, VideoDiT, VideoDiTBlock, VideoDiTConfig, attend_within_windows,
                                       block_windows, group_into_windows, ungroup_windows)

CAPTIONS = ["a red circle moving left", "a blue square moving up", "a green triangle moving right"]
TOKENIZER = CaptionTokenizer.from_captions(CAPTIONS)


def small_config(**fields):
    base = dict(in_channels=3, patch_size=2, temporal_patch=1, hidden=32, depth=2,
                heads=2, vocabulary_size=len(TOKENIZER), caption_length=8, text_hidden=32, text_depth=1,
                window=(2, 2, 2))
    return VideoDiTConfig(**{**base, **fields})


def randomize_zeros(module: torch.nn.Module, seed: int = 0) -> None:
    """adaLN-Zero starts every block as the identity; give the zero-initialised weights values to see through."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            if parameter.abs().max() == 0:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)


@torch.no_grad()
def token_influence(block: VideoDiTBlock, grid, window, angles, dim: int) -> torch.Tensor:
    """(N, N) booleans: whether changing input token j changes output token i. Batch item j + 1 has token j
    perturbed; in float64 an output that does not depend on it stays within rounding (1e-10) of item 0's, where a
    real dependence moves it by ~0.1."""
    block, tokens = block.double(), grid[0] * grid[1] * grid[2]
    x = torch.randn(1, tokens, dim, dtype=torch.float64).repeat(tokens + 1, 1, 1)
    x[torch.arange(1, tokens + 1), torch.arange(tokens)] += torch.randn(tokens, dim, dtype=torch.float64)
    angles = None if angles is None else angles.double()
    out = block(x, torch.randn(1, dim, dtype=torch.float64).expand(tokens + 1, dim), grid, window, angles)
    return ((out[1:] - out[:1]).abs() > 1e-10).any(dim=-1).T  # (output token i, perturbed token j)


def same_window(grid, window) -> torch.Tensor:
    """(N, N): whether tokens i and j, in (t, h, w) order, fall in the same window of the grid."""
    t, h, w = torch.meshgrid(*(torch.arange(size) for size in grid), indexing="ij")
    cells = [coordinate.flatten() // side for coordinate, side in zip((t, h, w), window)]
    return torch.stack([cell[:, None] == cell[None, :] for cell in cells]).all(dim=0)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("rotary", [False, True])
def test_each_block_sees_exactly_its_windows(layout, rotary):
    config = small_config(layout=layout, vocabulary_size=0, rotary=rotary)
    grid = (4, 4, 4)
    for index, window in enumerate(block_windows(config, grid)):
        torch.manual_seed(index)
        block = VideoDiTBlock(config)
        randomize_zeros(block)
        angles = rotary_angles(window, config.hidden // config.heads) if rotary else None
        influence = token_influence(block, grid, window, angles, config.hidden)
        assert torch.equal(influence, same_window(grid, window)), (layout, index, window)


def test_layouts_choose_the_papers_windows():
    grid = (4, 4, 4)
    spatial, temporal = (1, 4, 4), (4, 1, 1)
    assert block_windows(small_config(layout="spacetime", depth=3), grid) == [grid] * 3
    assert block_windows(small_config(layout="latte_interleaved", depth=4), grid) == [spatial, temporal] * 2
    assert block_windows(small_config(layout="latte_late_fusion", depth=4), grid) == [spatial] * 2 + [temporal] * 2
    assert block_windows(small_config(layout="walt_windows", depth=4), grid) == [spatial, (2, 2, 2)] * 2


def test_stacked_layouts_reach_where_they_should():
    """Two blocks: a spatial then a temporal block reach every token (factorised attention covers spacetime); a
    spatial block then 2-frame windows never let frame 2 influence frame 0 (W.A.L.T's local spacetime windows)."""
    @torch.no_grad()
    def frame_influence(layout):  # (output frame, perturbed input frame)
        torch.manual_seed(0)
        model = VideoDiT(small_config(layout=layout, vocabulary_size=0)).double()
        randomize_zeros(model)
        x = torch.randn(1, 3, 4, 8, 8, dtype=torch.float64).repeat(5, 1, 1, 1, 1)
        for frame in range(4):
            x[frame + 1, :, frame] += torch.randn(3, 8, 8, dtype=torch.float64)
        out = model(x, torch.full((5,), 0.5, dtype=torch.float64))
        return ((out[1:] - out[:1]).abs() > 1e-10).any(dim=4).any(dim=3).any(dim=1).T

    assert frame_influence("latte_interleaved").all()
    assert torch.equal(frame_influence("walt_windows"), torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1],
                                                                     [0, 0, 1, 1]], dtype=torch.bool))


def test_windows_group_and_ungroup_exactly():
    tokens = torch.randn(2, 4 * 6 * 8, 5)
    for window in [(1, 6, 8), (4, 1, 1), (2, 3, 4), (4, 6, 8)]:
        groups = group_into_windows(tokens, (4, 6, 8), window)
        size = window[0] * window[1] * window[2]
        assert groups.shape == (2 * 4 * 6 * 8 // size, size, 5)
        assert torch.equal(ungroup_windows(groups, (4, 6, 8), window, 2), tokens)


def test_a_block_attends_as_full_attention_masked_to_its_windows():
    """The block's windowed attention, regrouped by attend_within_windows, equals attention over all N tokens at
    once with the scores of every pair outside a shared window masked out, from the block's own projections."""
    config = small_config(vocabulary_size=0, hidden=16, heads=2)
    grid, heads, head_dim = (4, 6, 8), 2, 8
    h = torch.randn(2, 4 * 6 * 8, 16, dtype=torch.float64)
    torch.manual_seed(0)
    attention = VideoDiTBlock(config).double().attention
    query = attention.query(h).reshape(2, -1, heads, head_dim).transpose(1, 2)  # (B, heads, N, D / heads)
    key, value = (part.reshape(2, -1, heads, head_dim).transpose(1, 2) for part in attention.key_value(h).chunk(2, -1))
    for window in [(1, 6, 8), (4, 1, 1), (2, 3, 4), (4, 6, 8)]:
        scores = (query @ key.transpose(-2, -1)) / head_dim ** 0.5
        weights = scores.masked_fill(~same_window(grid, window), float("-inf")).softmax(dim=-1)
        masked = attention.out((weights @ value).transpose(1, 2).reshape(2, -1, 16))
        windowed = attend_within_windows(h, grid, window, lambda windows: attention(windows))
        torch.testing.assert_close(windowed, masked, rtol=1e-10, atol=1e-10)


def test_attend_within_windows_calls_attention_once_and_refuses_bad_shapes():
    calls = []
    out = attend_within_windows(torch.randn(2, 48, 3), (2, 4, 6), (1, 2, 3), lambda w: calls.append(w.shape) or w)
    assert calls == [(2 * 8, 6, 3)] and out.shape == (2, 48, 3)
    with pytest.raises(ValueError, match="tokens must be \\(B, T'H'W', D\\) = \\(B, 48, D\\)"):
        attend_within_windows(torch.randn(2, 40, 3), (2, 4, 6), (1, 2, 3), lambda w: w)
    with pytest.raises(ValueError, match="window \\(1, 3, 3\\) does not tile the token grid \\(2, 4, 6\\)"):
        attend_within_windows(torch.randn(2, 48, 3), (2, 4, 6), (1, 3, 3), lambda w: w)


def test_starts_as_the_zero_function_and_the_caption_matters():
    torch.manual_seed(0)
    model = VideoDiT(small_config())
    x, noise_label = torch.randn(2, 3, 4, 8, 8), torch.rand(2)
    captions = TOKENIZER.encode(CAPTIONS[:2], 8)
    assert model(x, noise_label, captions).abs().max() == 0  # adaLN-Zero
    randomize_zeros(model)
    first, swapped = model(x, noise_label, captions), model(x, noise_label, captions.flip(0))
    assert not torch.allclose(first[0], swapped[0])
    # padding is ignored: a longer caption budget with the same words gives the same output
    wider = VideoDiT(small_config(caption_length=12))
    wider.load_state_dict({**model.state_dict(), "text_encoder.position": torch.cat(
        [model.text_encoder.position, torch.zeros(1, 4, 32)], dim=1)})
    torch.testing.assert_close(wider(x, noise_label, TOKENIZER.encode(CAPTIONS[:2], 12)), first)


@pytest.mark.parametrize("sampler", ["heun", "dpmpp_2m", "euler_ancestral"])
def test_every_sampler_drives_it_behind_the_edm_denoiser_with_guidance(sampler):
    torch.manual_seed(0)
    network = VideoDiT(small_config(noise_label_scale=250.0))
    randomize_zeros(network)
    guided = GuidedDenoiser(EDMDenoiser(network, sigma_data=0.5).eval(), 3.0, {"caption": PAD})
    sigmas = karras_sigmas(4)
    noise = torch.randn(2, 3, 4, 8, 8, generator=torch.Generator().manual_seed(1)) * sigmas[0]
    with torch.no_grad():
        samples = get_sampler(sampler)(guided, noise, sigmas, cond={"caption": TOKENIZER.encode(CAPTIONS[:2], 8)},
                                       generator=torch.Generator().manual_seed(2))
    assert samples.shape == noise.shape and torch.isfinite(samples).all()


def test_flow_samplers_drive_it_too():
    torch.manual_seed(0)
    network = VideoDiT(small_config(noise_label_scale=1000.0))
    randomize_zeros(network)
    denoiser = FlowDenoiser(network, Path("linear"), "velocity").eval()
    sigmas = karras_sigmas(4)
    noise = torch.randn(1, 3, 4, 8, 8, generator=torch.Generator().manual_seed(1)) * sigmas[0]
    with torch.no_grad():
        samples = get_sampler("flow_heun")(denoiser, noise, sigmas,
                                           cond={"caption": TOKENIZER.encode(CAPTIONS[:1], 8)})
    assert torch.isfinite(samples).all()


def test_activation_checkpointing_gives_the_same_gradients():
    gradients = []
    for checkpointed in (False, True):
        torch.manual_seed(0)
        model = VideoDiT(small_config(layout="walt_windows", checkpoint_activations=checkpointed))
        randomize_zeros(model)
        model(torch.randn(2, 3, 4, 8, 8, generator=torch.Generator().manual_seed(0)), torch.rand(2),
              TOKENIZER.encode(CAPTIONS[:2], 8)).square().mean().backward()
        gradients.append([p.grad for p in model.parameters()])
    for plain, recomputed in zip(*gradients):
        torch.testing.assert_close(recomputed, plain)


def test_tokenizer_round_trip_and_unknown_words():
    ids = TOKENIZER.encode(["A red circle, moving LEFT.", "a purple circle"], 8)
    assert ids[0, 0] == CAPTION and ids[0, 6:].tolist() == [PAD, PAD]
    assert TOKENIZER.decode(ids)[0] == "a red circle moving left"
    assert ids[1, 2] == UNKNOWN
    with pytest.raises(ValueError, match="has 5 words; the model takes 3"):
        TOKENIZER.encode(CAPTIONS[:1], 4)


def test_clear_errors():
    with pytest.raises(ValueError, match="unknown layout 'diagonal'"):
        VideoDiT(small_config(layout="diagonal"))
    with pytest.raises(ValueError, match="window \\(3, 2, 2\\) does not tile the token grid \\(4, 4, 4\\)"):
        VideoDiT(small_config(layout="walt_windows", window=(3, 2, 2)))(torch.randn(1, 3, 4, 8, 8), torch.rand(1),
                                                                       TOKENIZER.encode(CAPTIONS[:1], 8))
    with pytest.raises(ValueError, match="unknown frame_marking 'paint'"):
        VideoDiT(small_config(frame_marking="paint"))
    model = VideoDiT(small_config())
    with pytest.raises(ValueError, match="needs a caption \\(ids from CaptionTokenizer.encode\\)"):
        model(torch.randn(1, 3, 4, 8, 8), torch.rand(1))
    with pytest.raises(ValueError, match="takes videos \\(B, 3, T, H, W\\), got \\(1, 4, 5, 8, 8\\)"):
        model(torch.randn(1, 4, 5, 8, 8), torch.rand(1), TOKENIZER.encode(CAPTIONS[:1], 8))
    with pytest.raises(ValueError, match="width 9 is not divisible by the patch size 2"):
        model(torch.randn(1, 3, 5, 8, 9), torch.rand(1), TOKENIZER.encode(CAPTIONS[:1], 8))
    with pytest.raises(ValueError, match="caption ids \\(B, 8\\) of dtype long"):
        model(torch.randn(1, 3, 4, 8, 8), torch.rand(1), torch.zeros(1, 8))
