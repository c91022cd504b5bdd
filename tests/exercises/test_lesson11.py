"""Lesson 11 checks (counting memory, activation checkpointing), against minisora by default and your stubs with
--impl=exercises."""
from dataclasses import replace

import pytest
import torch

from minisora.memory import MEMORY_PRESETS, dit_config
from minisora.models.dit import DiT, count_parameters

pytestmark = pytest.mark.lesson11


def test_token_grid_of_the_presets(impl):
    assert impl.token_grid(MEMORY_PRESETS["256px"]) == (5, 16, 16)  # 17 frames -> 5 latent frames of 32 x 32
    assert impl.token_grid(MEMORY_PRESETS["480p"]) == (19, 30, 53)
    assert impl.token_grid(MEMORY_PRESETS["tiny"]) == (8, 4, 4)  # pixels, 2 x 8 x 8 patches
    with pytest.raises(ValueError):
        impl.token_grid(replace(MEMORY_PRESETS["256px"], frames=16))
    with pytest.raises(ValueError):
        impl.token_grid(replace(MEMORY_PRESETS["256px"], height=100))


@pytest.mark.parametrize("fields", [dict(), dict(hidden=48, heads=3, mlp_ratio=2.0, temporal_patch=1, depth=3)])
def test_parameter_count_equals_the_built_model(impl, fields):
    config = replace(MEMORY_PRESETS["tiny"], **fields)
    with torch.device("meta"):
        model = DiT(dit_config(config))
    assert impl.count_dit_parameters(config) == count_parameters(model)
    assert impl.count_dit_parameters(replace(MEMORY_PRESETS["256px"], hidden=64, heads=4, depth=2)) \
        == count_parameters(DiT(dit_config(replace(MEMORY_PRESETS["256px"], hidden=64, heads=4, depth=2))))


def test_checkpointed_block_gives_the_same_gradients_and_runs_twice(impl):
    torch.manual_seed(0)
    block = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.GELU(), torch.nn.Linear(32, 8))
    calls = []
    # counted on entering the first layer: a recomputation stops as soon as it has rebuilt what backward needs
    block[0].register_forward_pre_hook(lambda *args: calls.append(1))
    x = torch.randn(4, 8, requires_grad=True)
    plain = block(x)
    plain.square().sum().backward()
    expected = [x.grad.clone()] + [p.grad.clone() for p in block.parameters()]
    x.grad = None
    block.zero_grad()
    calls.clear()
    out = impl.run_block(block, True, x)
    torch.testing.assert_close(out, plain)
    out.square().sum().backward()
    assert len(calls) == 2  # the forward pass, and its recomputation in the backward pass
    for mine, reference in zip([x.grad] + [p.grad for p in block.parameters()], expected):
        torch.testing.assert_close(mine, reference)
    calls.clear()
    with torch.no_grad():
        impl.run_block(block, True, x)
    impl.run_block(block, False, x)
    assert len(calls) == 2  # no recomputation without gradients, nor without checkpointing
