"""U-ViT's forward pass (uvit_forward, the function UViT.forward runs) and its long skips, against hand-chained
blocks: with every skip projection set to pass h alone, U-ViT is the plain chain of its blocks."""
import pytest
import torch

from minisora.models.patches import unpatchify
from minisora.models.uvit import UViT, UViTConfig, uvit_forward


def _model(**options) -> UViT:
    torch.manual_seed(0)
    return UViT(UViTConfig(input_size=8, in_channels=3, hidden=32, depth=5, heads=4, num_classes=5, **options)).eval()


def _chain_of_blocks(model: UViT, x, noise_label, label) -> torch.Tensor:
    """The blocks run one after another, no long skip, the rest of the network as uvit_forward has it."""
    captured = {}
    hook = model.in_blocks[0].register_forward_pre_hook(lambda module, inputs: captured.setdefault("h", inputs[0]))
    uvit_forward(model, x, noise_label, label)  # only to catch the token sequence entering the first block
    hook.remove()
    h = captured["h"]
    for block in [*model.in_blocks, model.mid_block, *model.out_blocks]:
        h = block(h)
    patches = model.output(model.norm(h))[:, model.extra_tokens:]
    return model.final_conv(unpatchify(patches, model.patch, model.grid))


def test_uvit_forward_is_the_module_forward():
    model = _model()
    x, noise, label = torch.randn(2, 3, 1, 8, 8), torch.rand(2), torch.tensor([0, 4])
    with torch.no_grad():
        torch.testing.assert_close(model(x, noise, label), uvit_forward(model, x, noise, label), rtol=0, atol=0)


def test_long_skips_concatenate_h_then_the_mirror_block_and_can_be_left_out():
    x, noise, label = torch.randn(2, 3, 1, 8, 8), torch.rand(2), torch.tensor([0, 4])
    with_skips, without = _model(), _model(long_skips=False)
    assert len(with_skips.skip_projections) == 2 and len(without.skip_projections) == 0
    without.load_state_dict({k: v for k, v in with_skips.state_dict().items() if "skip_projections" not in k})
    with torch.no_grad():
        chain = _chain_of_blocks(with_skips, x, noise, label)
        torch.testing.assert_close(without(x, noise, label), chain, rtol=1e-6, atol=1e-6)
        assert not torch.allclose(with_skips(x, noise, label), chain, atol=1e-3)
        # Linear([h, skip]) with weight [I, 0] and no bias passes h alone: the chain again
        for projection in with_skips.skip_projections:
            projection.weight.copy_(torch.cat([torch.eye(32), torch.zeros(32, 32)], dim=1))
            projection.bias.zero_()
        torch.testing.assert_close(with_skips(x, noise, label), chain, rtol=1e-6, atol=1e-6)
        # with weight [0, I] the first deep block gets the last shallow block's output, not the middle block's
        for projection in with_skips.skip_projections:
            projection.weight.copy_(torch.cat([torch.zeros(32, 32), torch.eye(32)], dim=1))
        shallow = []
        hooks = [block.register_forward_hook(lambda module, inputs, output: shallow.append(output))
                 for block in with_skips.in_blocks]
        seen = []
        hooks.append(with_skips.out_blocks[0].register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0])))
        with_skips(x, noise, label)
        for hook in hooks:
            hook.remove()
        torch.testing.assert_close(seen[0], shallow[-1], rtol=0, atol=0)


def test_an_even_depth_is_refused():
    with pytest.raises(ValueError, match="odd depth"):
        UViT(UViTConfig(depth=4))
