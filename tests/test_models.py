"""Patches, embeddings, attention backends and DiT, checked against the paper's table and by construction."""
import pytest
import torch

from minisora.diffusion.edm import EDMDenoiser
from minisora.diffusion.samplers import sample_heun
from minisora.diffusion.schedules import karras_sigmas
from minisora.models.attention import Attention, attention_math, attention_sdpa
from minisora.models.dit import (CONDITIONINGS, DiT, DiTBlock, DiTConfig, adaln_zero_block, count_parameters,
                                 dit_config, forward_gflops)
from minisora.models.embeddings import LabelEmbedding, apply_rotary, rotary_angles, sincos_position_embedding
from minisora.models.patches import patchify, unpatchify

TINY = DiTConfig(input_size=8, in_channels=3, patch_size=2, hidden=32, depth=2, heads=4, num_classes=5,
                 learn_sigma=False)


def test_patchify_round_trips_and_orders_tokens_time_major():
    video = torch.randn(2, 3, 4, 8, 6)
    tokens = patchify(video, (2, 4, 3))
    assert tokens.shape == (2, 2 * 2 * 2, 3 * 2 * 4 * 3)
    torch.testing.assert_close(unpatchify(tokens, (2, 4, 3), (2, 2, 2)), video)
    # token 0 is frames 0-1, rows 0-3, columns 0-2; token 1 moves one patch right
    torch.testing.assert_close(tokens[:, 0], video[:, :, :2, :4, :3].reshape(2, -1))
    torch.testing.assert_close(tokens[:, 1], video[:, :, :2, :4, 3:6].reshape(2, -1))


def test_patch_sizes_that_do_not_divide_are_clear_errors():
    with pytest.raises(ValueError, match="height 7 is not divisible by the patch size 2"):
        patchify(torch.zeros(1, 3, 1, 7, 8), (1, 2, 2))
    with pytest.raises(ValueError, match="unsqueeze"):
        patchify(torch.zeros(1, 3, 8, 8), (1, 2, 2))


def test_sincos_positions_are_distinct_and_split_between_axes():
    embedding = sincos_position_embedding((3, 4, 5), 64, time_dim=16)
    assert embedding.shape == (60, 64)
    assert torch.cdist(embedding, embedding).add(torch.eye(60) * 1e3).min() > 0.1
    image = sincos_position_embedding((1, 4, 4), 64)
    torch.testing.assert_close(image[1, :32], image[0, :32])  # same row: the row half agrees
    assert not torch.allclose(image[1, 32:], image[0, 32:])


def test_rotary_scores_depend_only_on_the_offset_between_tokens():
    """RoPE's point (RoFormer, Eq. 16): a query and a key turned by their positions have a dot product that depends
    on the positions only through their difference. Checked against complex numbers: the pair (x_i, x_{i + d/2}) is
    x_i + j x_{i + d/2}, turning it multiplies by e^(j angle), and the dot product is Re(sum q conj(k))."""
    grid, head_dim = (3, 4, 5), 16
    angles = rotary_angles(grid, head_dim).double()  # (60, 8)
    q, k = torch.randn(head_dim, dtype=torch.float64), torch.randn(head_dim, dtype=torch.float64)
    turned_q, turned_k = apply_rotary(q.expand(60, -1), angles), apply_rotary(k.expand(60, -1), angles)
    scores = turned_q @ turned_k.T  # (query position, key position)

    def index(t, h, w):
        return (t * 4 + h) * 5 + w

    complex_q, complex_k = torch.complex(q[:8], q[8:]), torch.complex(k[:8], k[8:])
    for (query, key) in [((0, 0, 0), (1, 2, 3)), ((1, 1, 1), (2, 3, 4)), ((2, 3, 4), (0, 0, 0))]:
        expected = (complex_q * complex_k.conj() * torch.exp(1j * (angles[index(*query)] - angles[index(*key)]))).real
        torch.testing.assert_close(scores[index(*query), index(*key)], expected.sum())
    # the same offset (1, 2, 3) anywhere in the grid: the same score
    torch.testing.assert_close(scores[index(0, 0, 0), index(1, 2, 3)], scores[index(1, 1, 1), index(2, 3, 4)])
    assert not torch.isclose(scores[index(0, 0, 0), index(1, 2, 3)], scores[index(0, 0, 0), index(1, 2, 2)])
    torch.testing.assert_close(turned_q.norm(dim=1), q.norm().expand(60))  # turning keeps lengths


def test_rotary_angles_split_the_pairs_between_the_axes():
    angles = rotary_angles((2, 3, 3), 32)  # 16 pairs: 4 for the frame, 6 for the row, 6 for the column
    assert angles.shape == (18, 16)
    moved = {"frame": angles[9] - angles[0], "row": angles[3] - angles[0], "column": angles[1] - angles[0]}
    for axis, pairs in [("frame", slice(0, 4)), ("row", slice(4, 10)), ("column", slice(10, 16))]:
        assert (moved[axis][pairs] > 0).all() and moved[axis].count_nonzero() == pairs.stop - pairs.start, axis
    with pytest.raises(ValueError, match="even head dim"):
        rotary_angles((2, 3, 3), 15)
    with pytest.raises(ValueError, match="at least 6"):
        rotary_angles((2, 3, 3), 4)


@pytest.mark.parametrize("masked", [False, True])
def test_attention_backends_agree_in_float64(masked):
    q, k, v = (torch.randn(2, 3, 7, 8, dtype=torch.float64) for _ in range(3))
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3]) if masked else None
    torch.testing.assert_close(attention_math(q, k, v, mask), attention_sdpa(q, k, v, mask))
    # a direct loop over one query, from the definition
    weights = torch.softmax(q[0, 0, 0] @ k[0, 0].T / 8**0.5, dim=0)
    torch.testing.assert_close(attention_math(q, k, v)[0, 0, 0], weights @ v[0, 0])


def test_masked_keys_have_no_influence():
    q, k, v = (torch.randn(1, 2, 6, 4, dtype=torch.float64) for _ in range(3))
    mask = torch.tensor([[True, True, True, False, False, True]])
    changed = v.clone()
    changed[:, :, 3:5] = 100.0
    torch.testing.assert_close(attention_math(q, k, v, mask), attention_math(q, k, changed, mask))


def test_attention_module_checks_its_sizes():
    with pytest.raises(ValueError, match="not divisible by the number of heads"):
        Attention(30, 4)
    with pytest.raises(ValueError, match="unknown attention backend"):
        Attention(32, 4, backend="magic")
    cross = Attention(32, 4, context_dim=12)
    assert cross(torch.randn(2, 5, 32), context=torch.randn(2, 3, 12)).shape == (2, 5, 32)


@pytest.mark.parametrize("name, millions, gflops", [
    ("DiT-S/2", 33, 6.06), ("DiT-B/2", 130, 23.01), ("DiT-L/2", 458, 80.71), ("DiT-XL/2", 675, 118.64)])
def test_dit_matches_the_papers_table(name, millions, gflops):
    """Peebles & Xie 2023, Tables 1 and 4: parameters and forward GFLOPs at 256x256 (32x32x4 latents)."""
    config = dit_config(name)
    with torch.device("meta"):
        parameters = count_parameters(DiT(config))
    assert abs(parameters / 1e6 - millions) / millions < 0.01
    assert abs(forward_gflops(config) - gflops) / gflops < 0.005


def test_adaln_zero_starts_as_the_zero_function_with_identity_blocks():
    model = DiT(TINY)
    x, noise, label = torch.randn(3, 3, 1, 8, 8), torch.randn(3), torch.tensor([0, 1, 2])
    assert torch.equal(model(x, noise, label), torch.zeros(3, 3, 1, 8, 8))
    tokens = torch.randn(3, 16, 32)
    assert torch.equal(model.blocks[0](tokens, torch.randn(3, 32)), tokens)


def test_adaln_zero_block_is_the_papers_equations_written_out():
    """Against Section 3.2 by hand in float64, sample by sample: the six vectors from Linear(SiLU(c)), LayerNorm as
    (h - mean) / sqrt(var + eps) without its own affine, both residual branches gated; with random (not zero)
    modulation weights, so that every shift, scale and gate matters. The block's forward is this function."""
    torch.manual_seed(0)
    block = DiTBlock(TINY).double()
    torch.nn.init.normal_(block.modulation[1].weight, std=0.3)
    torch.nn.init.normal_(block.modulation[1].bias, std=0.3)
    x, c = torch.randn(3, 7, 32, dtype=torch.float64), torch.randn(3, 32, dtype=torch.float64)

    def layer_norm(h):
        return (h - h.mean(-1, keepdim=True)) / (h.var(-1, unbiased=False, keepdim=True) + 1e-6).sqrt()

    with torch.no_grad():
        out = adaln_zero_block(block, x, c)
        torch.testing.assert_close(block(x, c), out)
        for b in range(3):
            silu = c[b] * torch.sigmoid(c[b])
            vectors = block.modulation[1].weight @ silu + block.modulation[1].bias
            shift1, scale1, gate1, shift2, scale2, gate2 = vectors.split(32)
            h = x[b:b + 1]
            h = h + gate1 * block.attention(layer_norm(h) * (1 + scale1) + shift1)
            h = h + gate2 * block.mlp(layer_norm(h) * (1 + scale2) + shift2)
            torch.testing.assert_close(out[b:b + 1], h, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_every_conditioning_runs_and_learns(conditioning):
    torch.manual_seed(0)
    model = DiT(DiTConfig(**{**TINY.__dict__, "conditioning": conditioning, "learn_sigma": True}))
    x, noise, label = torch.randn(4, 3, 1, 8, 8), torch.randn(4), torch.tensor([0, 1, 2, 5])
    target = torch.randn(4, 6, 1, 8, 8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = (model(x, noise, label) - target).pow(2).mean()
        optimizer.zero_grad(); loss.backward(); optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_label_dropout_only_in_training():
    embedding = LabelEmbedding(10, 8, dropout=1.0)
    labels = torch.arange(10)
    embedding.train()
    torch.testing.assert_close(embedding(labels), embedding.table.weight[10].expand(10, 8))
    embedding.eval()
    torch.testing.assert_close(embedding(labels), embedding.table.weight[:10])
    with pytest.raises(ValueError, match="labels must be in 0..10"):
        embedding(torch.tensor([11]))


def test_dit_rejects_wrong_inputs():
    model = DiT(TINY)
    with pytest.raises(ValueError, match="got \\(2, 3, 1, 6, 6\\)"):
        model(torch.zeros(2, 3, 1, 6, 6), torch.zeros(2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="needs a label"):
        model(torch.zeros(2, 3, 1, 8, 8), torch.zeros(2))
    with pytest.raises(ValueError, match="unknown DiT configuration"):
        dit_config("DiT-M/2")


def test_video_dit_behind_the_denoiser_interface_drives_a_sampler():
    config = DiTConfig(**{**TINY.__dict__, "frames": 4, "temporal_patch": 2})
    denoiser = EDMDenoiser(DiT(config).eval())
    sigmas = karras_sigmas(3)
    x = torch.randn(2, 3, 4, 8, 8) * sigmas[0]
    out = sample_heun(denoiser, x, sigmas, cond={"label": torch.tensor([1, 5])})
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_uvit_skips_connect_mirrored_blocks_and_all_inputs_are_tokens():
    from minisora.models.uvit import UViT, UViTConfig

    torch.manual_seed(0)
    config = UViTConfig(input_size=8, in_channels=3, hidden=32, depth=5, heads=4, num_classes=5)
    model = UViT(config)
    assert len(model.in_blocks) == len(model.out_blocks) == len(model.skip_projections) == 2
    assert model.position.shape == (1, 2 + 16, 32)  # noise token, class token, 16 patches
    x, noise, label = torch.randn(2, 3, 1, 8, 8), torch.randn(2), torch.tensor([1, 5])
    out = model(x, noise, label)
    assert out.shape == x.shape
    # the noise level and the class reach the output through their tokens
    assert not torch.allclose(model(x, noise + 1, label), out)
    assert not torch.allclose(model(x, noise, torch.tensor([2, 5])), out)
    # the first in-block's output reaches the output through the long skip even when the path through the
    # second in-block is detached and the middle block's output is zeroed
    model.mid_block.register_forward_hook(lambda module, inputs, output: torch.zeros_like(output))
    model.in_blocks[1].register_forward_hook(lambda module, inputs, output: output.detach())
    model(x, noise, label).sum().backward()
    assert model.in_blocks[0].mlp[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="odd depth"):
        UViT(UViTConfig(depth=4))
