"""Lesson 11 checks (dynamic loss scaling, counting memory, activation checkpointing), against minisora by default and
your stubs with --impl=exercises."""
from dataclasses import replace

import pytest
import torch

from minisora.memory import MEMORY_PRESETS, dit_config
from minisora.models.dit import DiT, count_parameters

pytestmark = pytest.mark.lesson11


def scaled_backward(parameter, true_gradient, scale, poison=1.0):
    """The backward pass of scale x L for the loss L = <parameter, true_gradient>, whose gradient is true_gradient."""
    parameter.grad = None
    ((parameter * true_gradient).sum() * poison * scale).backward()


def test_loss_scaled_steps_are_sgd_on_the_true_gradient_and_the_scale_grows(impl):
    torch.manual_seed(0)
    parameter = torch.nn.Parameter(torch.randn(4, 6))
    optimizer = torch.optim.SGD([parameter], lr=100.0)
    weights = parameter.detach().double().clone()
    scale, good_steps, scales = 2.0 ** 12, 0, []
    for step in range(7):
        true_gradient = torch.randn(4, 6) * 1e-5
        scaled_backward(parameter, true_gradient, scale)
        norm, scale, good_steps = impl.dynamic_loss_scale_step([parameter], optimizer, scale, good_steps,
                                                               growth_interval=3)
        scales.append(scale)
        weights -= 100.0 * true_gradient.double()  # SGD on the true gradient, in float64
        torch.testing.assert_close(parameter.grad, true_gradient, rtol=0, atol=0)  # unscaling by 2^k is exact
        assert norm == pytest.approx(float(true_gradient.double().norm()), rel=1e-5)
        torch.testing.assert_close(parameter.detach().double(), weights, rtol=1e-6, atol=1e-7)
    # doubled after each run of three good steps, the count starting again
    assert scales == [2.0 ** 12, 2.0 ** 12, 2.0 ** 13, 2.0 ** 13, 2.0 ** 13, 2.0 ** 14, 2.0 ** 14]
    assert good_steps == 1


@pytest.mark.parametrize("poison", [float("inf"), float("nan")])
def test_an_overflowing_step_is_skipped_and_halves_the_scale(impl, poison):
    torch.manual_seed(0)
    first, second = torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(2, 2))
    no_gradient = torch.nn.Parameter(torch.randn(2))  # a parameter the loss does not use: its .grad stays None
    optimizer = torch.optim.Adam([first, second, no_gradient], lr=0.1)
    scale, good_steps = 2.0 ** 15, 0
    for step in range(2):  # two good steps, so that Adam has moments to keep
        scaled_backward(first, torch.randn(3), scale)
        scaled_backward(second, torch.randn(2, 2), scale)
        _, scale, good_steps = impl.dynamic_loss_scale_step([first, second, no_gradient], optimizer, scale, good_steps)
    assert good_steps == 2 and scale == 2.0 ** 15
    before = [tensor.detach().clone() for tensor in (first, second, no_gradient)]
    moments = [optimizer.state[first]["exp_avg"].clone(), optimizer.state[first]["step"].clone()]
    scaled_backward(first, torch.randn(3), scale)
    scaled_backward(second, torch.randn(2, 2), scale, poison)  # S g overflowed in one tensor only
    norm, scale, good_steps = impl.dynamic_loss_scale_step([first, second, no_gradient], optimizer, scale, good_steps)
    assert norm is None and scale == 2.0 ** 14 and good_steps == 0
    assert all(torch.equal(a, b) for a, b in zip(before, (first, second, no_gradient)))  # not one weight moved
    assert torch.equal(optimizer.state[first]["exp_avg"], moments[0])  # the optimizer did not run at all
    assert torch.equal(optimizer.state[first]["step"], moments[1])


def test_loss_scaling_keeps_float16_gradients_that_would_flush_to_zero(impl):
    """A float16 network whose true gradients lie below float16's smallest subnormal, 2^-24: unscaled they flush to
    zero; scaled by 2^16 they survive the float16 backward pass and come back, unscaled, in float32."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 8).half()
    x = torch.randn(16, 8).half()
    master = torch.nn.Parameter(layer.weight.detach().float())
    optimizer = torch.optim.SGD([master], lr=1.0)
    exact = torch.func.grad(lambda w: 1e-9 * torch.nn.functional.linear(x.double(), w, layer.bias.detach().double())
                            .square().mean())(master.detach().double())
    assert exact.abs().max() < 2.0 ** -24
    for scale in (1.0, 2.0 ** 16):
        layer.zero_grad()
        (1e-9 * layer(x).float().square().mean() * scale).backward()  # the loss in float32, the layer in float16
        master.grad = layer.weight.grad.float()
        norm, _, _ = impl.dynamic_loss_scale_step([master], optimizer, scale, 0)
        if scale == 1.0:
            assert norm == 0.0  # every gradient flushed: the step moved nothing
        else:
            assert norm == pytest.approx(float(exact.norm()), rel=2e-2)
            # float16's own rounding (about 2^-11 of each value, in the forward and the backward pass) is what is left
            torch.testing.assert_close(master.grad.double(), exact, rtol=0, atol=3e-2 * float(exact.abs().max()))


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
