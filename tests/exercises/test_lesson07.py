"""Lesson 07 checks (patches, positions, attention), against minisora by default and your stubs with --impl=exercises."""
import math

import pytest
import torch

pytestmark = pytest.mark.lesson07


def test_patchify_puts_each_block_of_pixels_in_its_token(impl):
    video = torch.randn(2, 3, 4, 6, 8)
    tokens = impl.patchify(video, (2, 3, 4))  # grid (2, 2, 2)
    assert tokens.shape == (2, 8, 3 * 2 * 3 * 4)
    for t in range(2):
        for h in range(2):
            for w in range(2):
                block = video[:, :, 2 * t:2 * t + 2, 3 * h:3 * h + 3, 4 * w:4 * w + 4]  # (B, C, pt, ph, pw)
                torch.testing.assert_close(tokens[:, (t * 2 + h) * 2 + w], block.reshape(2, -1))


def test_a_linear_layer_on_patches_is_the_strided_patch_convolution(impl):
    image = torch.randn(2, 3, 1, 8, 8, dtype=torch.float64)
    convolution = torch.nn.Conv3d(3, 5, kernel_size=(1, 4, 4), stride=(1, 4, 4)).double()
    expected = convolution(image).flatten(2).transpose(1, 2)  # (B, N, 5)
    tokens = impl.patchify(image, (1, 4, 4))
    torch.testing.assert_close(tokens @ convolution.weight.reshape(5, -1).T + convolution.bias, expected)


def test_unpatchify_inverts_patchify_and_sizes_must_divide(impl):
    video = torch.randn(1, 2, 3, 4, 6)
    torch.testing.assert_close(impl.unpatchify(impl.patchify(video, (1, 2, 3)), (1, 2, 3), (3, 2, 2)), video)
    with pytest.raises(ValueError):
        impl.patchify(torch.randn(1, 3, 1, 10, 10), (1, 4, 4))


def test_sincos_positions_follow_the_formula(impl):
    dim, time_dim = 24, 8
    embedding = impl.sincos_position_embedding((2, 3, 4), dim, time_dim)
    assert embedding.shape == (2 * 3 * 4, dim)

    def encode(value, channels):  # [cos(v w_i), sin(v w_i)], w_i = 10000^(-i / (channels / 2))
        half = channels // 2
        angles = [value * 10000 ** (-i / half) for i in range(half)]
        return [math.cos(a) for a in angles] + [math.sin(a) for a in angles]

    spatial = (dim - time_dim) // 2
    for index, (t, h, w) in enumerate((t, h, w) for t in range(2) for h in range(3) for w in range(4)):
        expected = encode(t, time_dim) + encode(h, spatial) + encode(w, spatial)
        torch.testing.assert_close(embedding[index], torch.tensor(expected, dtype=torch.float32))
    image = impl.sincos_position_embedding((1, 3, 4), 16)  # 2D: row half, column half
    torch.testing.assert_close(image[5], torch.tensor(encode(1, 8) + encode(1, 8), dtype=torch.float32))


def test_attention_matches_a_loop_in_float64(impl):
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, n, 4, generator=generator, dtype=torch.float64) for n in (5, 7, 7))
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 4:] = False
    out = impl.attention_math(q, k, v, mask)
    for b in range(2):
        keys = int(mask[b].sum())
        for head in range(3):
            for i in range(5):
                scores = torch.stack([q[b, head, i] @ k[b, head, j] / 2.0 for j in range(keys)])  # sqrt(4) = 2
                weights = scores.exp() / scores.exp().sum()
                torch.testing.assert_close(out[b, head, i], (weights[:, None] * v[b, head, :keys]).sum(0))


def _uvit_by_hand(model, x, noise_label, label=None):
    """U-ViT's forward written independently from the model's parameters: the patches cut by reshaping, the long
    skip's concatenation as its two weight blocks, W_h h + W_skip skip + b, the patches put back by reshaping and the
    3x3 convolution called as F.conv3d."""
    config, dim = model.config, model.config.hidden
    batch, channels, frames, height, width = x.shape
    pt, ph, pw = model.patch
    gt, gh, gw = frames // pt, height // ph, width // pw
    blocks = x.reshape(batch, channels, gt, pt, gh, ph, gw, pw).permute(0, 2, 4, 6, 1, 3, 5, 7)
    patches = blocks.reshape(batch, gt * gh * gw, channels * pt * ph * pw)  # tokens (t, h, w), values (c, pt, ph, pw)
    tokens = [model.noise_embedding(noise_label.expand(batch))[:, None]]
    if label is not None:
        tokens.append(model.label_embedding.table.weight[label][:, None])
    tokens.append(patches @ model.patch_embedding.weight.T + model.patch_embedding.bias)
    h = torch.cat(tokens, dim=1) + model.position
    shallow = []
    for block in model.in_blocks:
        h = block(h)
        shallow.append(h)
    h = model.mid_block(h)
    for depth, block in enumerate(model.out_blocks):
        if config.long_skips:
            mirror = shallow[len(shallow) - 1 - depth]  # the last shallow block feeds the first deep one
            weight, bias = model.skip_projections[depth].weight, model.skip_projections[depth].bias
            h = h @ weight[:, :dim].T + mirror @ weight[:, dim:].T + bias
        h = block(h)
    h = torch.nn.functional.layer_norm(h, (dim,), model.norm.weight, model.norm.bias, model.norm.eps)
    out = (h @ model.output.weight.T + model.output.bias)[:, len(tokens) - 1:]
    out = out.reshape(batch, gt, gh, gw, channels, pt, ph, pw).permute(0, 4, 1, 5, 2, 6, 3, 7)
    out = out.reshape(batch, channels, frames, height, width)
    if config.final_conv:
        out = torch.nn.functional.conv3d(out, model.final_conv.weight, model.final_conv.bias, padding=(0, 1, 1))
    return out


def _random_uvit(**options):
    from minisora.models.uvit import UViT, UViTConfig

    torch.manual_seed(0)
    model = UViT(UViTConfig(hidden=32, depth=5, heads=4, **options)).double().eval()
    with torch.no_grad():  # learned positions far from their small initialisation, so that a missing one shows
        model.position.normal_()
    return model


def test_uvit_forward_is_every_input_a_token_with_mirrored_long_skips(impl):
    model = _random_uvit(input_size=8, in_channels=3, patch_size=2, num_classes=5)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(3, 3, 1, 8, 8, generator=generator, dtype=torch.float64)
    noise_label, label = torch.rand(3, generator=generator, dtype=torch.float64), torch.tensor([0, 4, 5])
    with torch.no_grad():
        out = impl.uvit_forward(model, x, noise_label, label)
        expected = _uvit_by_hand(model, x, noise_label, label)
        assert out.shape == x.shape
        torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)
        # the class token is read: another label, another output
        assert not torch.allclose(impl.uvit_forward(model, x, noise_label, torch.tensor([1, 4, 5])), out)


def test_uvit_forward_on_video_without_a_class_or_long_skips(impl):
    for long_skips in (True, False):
        model = _random_uvit(input_size=4, frames=4, temporal_patch=2, in_channels=2, patch_size=2,
                             long_skips=long_skips)
        generator = torch.Generator().manual_seed(2)
        x = torch.randn(2, 2, 4, 4, 4, generator=generator, dtype=torch.float64)
        noise_label = torch.tensor(0.3, dtype=torch.float64)  # one noise level for the whole batch
        with torch.no_grad():
            torch.testing.assert_close(impl.uvit_forward(model, x, noise_label), _uvit_by_hand(model, x, noise_label),
                                       rtol=1e-9, atol=1e-9)
