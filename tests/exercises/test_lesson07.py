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
