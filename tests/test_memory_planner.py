"""The memory planner (minisora.memory) against counted parameters and measured peaks."""
import subprocess
import sys
from dataclasses import asdict, replace

import pytest
import torch

from minisora.memory import (GIB, MEMORY_PRESETS, MemoryConfig, count_dit_parameters, dit_config,
                             measure_peak_memory, memory_variants, plan_memory, prepare_training_step, token_grid)
from minisora.models.dit import DiT, count_parameters

SMALL = MemoryConfig(frames=4, height=32, width=32, spatial_downsample=1, temporal_downsample=1, latent_channels=4,
                     patch_size=2, hidden=64, depth=4, heads=4, batch_size=4, precision="fp32")


@pytest.mark.parametrize("config", [SMALL, replace(SMALL, temporal_patch=2, mlp_ratio=2.0, hidden=48, heads=3),
                                    replace(MEMORY_PRESETS["256px"], depth=2, hidden=96, heads=4)])
def test_parameter_count_matches_the_built_dit(config):
    with torch.device("meta"):
        model = DiT(dit_config(config))
    assert count_dit_parameters(config) == count_parameters(model)


def test_memory_measurement_sees_an_allocation():
    """The measuring tool itself: a 64 MiB tensor filled inside the run shows up as 64 MiB (within 2 MiB)."""
    assert abs(measure_peak_memory(prepare_allocation, 64) / 2**20 - 64) < 2


def prepare_allocation(mebibytes: int):
    return lambda: torch.empty(mebibytes * 2**20 // 4).fill_(1.0)


@pytest.mark.parametrize("changes", [
    dict(attention="math", checkpoint_activations=False),
    dict(attention="flash", checkpoint_activations=False),
    dict(attention="flash", checkpoint_activations=True),
    dict(attention="math", checkpoint_activations=True, hidden=128, heads=2, depth=2),
    dict(attention="sdpa", checkpoint_activations=False, frames=8, batch_size=2, temporal_patch=2),
])
def test_planned_peak_is_within_20_percent_of_the_measured_one(changes):
    """On the CPU in float32: the gradients, activations and temporaries the plan counts, against the rise of the
    process's memory over one forward + backward (the weights exist before either)."""
    config = replace(SMALL, **changes)
    plan = plan_memory(config)
    estimate = plan["gradients"] + plan["activations"] + plan["transient"]
    measured = measure_peak_memory(prepare_training_step, asdict(config))
    assert 0.8 < measured / estimate < 1.2, (measured / 2**20, estimate / 2**20)


def fits(config: MemoryConfig) -> bool:
    return plan_memory(config)["with_reserved"] <= config.gpu_gib * GIB


@pytest.mark.parametrize("preset", ["256px", "480p"])
def test_24_gb_presets_fit_only_with_the_memory_savers(preset):
    config = MEMORY_PRESETS[preset]
    variants = dict(memory_variants(config))
    assert fits(config) and fits(variants["bf16, flash, checkpointing"])
    assert not fits(variants["fp32, math attention"]) and not fits(variants["bf16, math attention"])
    assert not fits(variants["bf16, flash attention"])  # fused attention alone is not enough either
    assert config.height >= 256 and config.frames >= 16
    if preset == "480p":
        assert config.height == 480 and config.frames >= 3 * 24  # 3 s at 24 fps


def test_flash_attention_removes_the_quadratic_term():
    short, long = replace(SMALL, attention="math"), replace(SMALL, attention="math", frames=8)
    growth = plan_memory(long)["activations"] / plan_memory(short)["activations"]
    flash_growth = (plan_memory(replace(long, attention="flash"))["activations"]
                    / plan_memory(replace(short, attention="flash"))["activations"])
    assert growth > 3 and flash_growth == pytest.approx(2, rel=0.05)  # twice the tokens: ~4x vs 2x


def test_bad_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="frames=6 must be 1 \\+ 4 k"):
        token_grid(replace(MEMORY_PRESETS["256px"], frames=6))
    with pytest.raises(ValueError, match="250 video does not divide by the VAE's spatial_downsample=8"):
        token_grid(replace(MEMORY_PRESETS["256px"], width=250))
    with pytest.raises(ValueError, match="width 33 is not divisible by the patch size 2"):  # 264 / 8 = 33 latents
        token_grid(replace(MEMORY_PRESETS["256px"], width=264))


def test_memory_command_prints_the_table():
    result = subprocess.run([sys.executable, "-m", "minisora", "memory", "--preset", "480p", "--batch_size=2"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "30,210 tokens" in result.stdout and "batch 2" in result.stdout
    assert "| bf16, flash, checkpointing |" in result.stdout and "| no |" in result.stdout


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="needs a CUDA GPU: compares with torch.cuda.max_memory_allocated")
@pytest.mark.parametrize("changes", [dict(precision="fp32", attention="math", checkpoint_activations=False),
                                     dict(precision="bf16", attention="flash", checkpoint_activations=False),
                                     dict(precision="bf16", attention="flash", checkpoint_activations=True)])
def test_planned_peak_matches_cuda_allocator_statistics(changes):
    from minisora.train.precision import MixedPrecision

    config = replace(SMALL, frames=8, batch_size=8, **changes)
    model = DiT(dit_config(config)).cuda()
    shape = (config.batch_size, config.latent_channels, model.config.frames, model.config.input_size,
             model.config.input_size)
    x, target = torch.randn(shape, device="cuda"), torch.randn(shape, device="cuda")
    noise_level = torch.rand(config.batch_size, device="cuda")
    autocast = MixedPrecision(config.precision, "cuda").autocast
    with autocast():  # warm-up (kernels compiled, workspaces allocated)
        model(x[:1], noise_level[:1]).float().sub(target[:1]).square().mean().backward()
    model.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    with autocast():
        loss = model(x, noise_level).float().sub(target).square().mean()
    loss.backward()
    measured = torch.cuda.max_memory_allocated() - before
    plan = plan_memory(config)
    estimate = plan["gradients"] + plan["activations"] + plan["transient"]
    assert 0.8 < measured / estimate < 1.2, (measured / 2**20, estimate / 2**20)


def test_cross_attention_parameters_match_the_video_dit_block():
    from minisora.memory import count_block_parameters
    from minisora.models.video_dit import VideoDiTBlock, VideoDiTConfig

    config = replace(SMALL, caption_tokens=12, text_hidden=48)
    block = VideoDiTBlock(VideoDiTConfig(hidden=config.hidden, heads=config.heads, vocabulary_size=16,
                                         text_hidden=config.text_hidden))
    assert count_block_parameters(config) == count_parameters(block)
    assert count_block_parameters(replace(config, caption_tokens=0)) < count_parameters(block)


def test_a_process_plans_its_share():
    """DDP: each process the whole model and 1/N of the batch's activations; FSDP: 1/N of the weights, gradients,
    AdamW and EMA besides, and the units it gathers; sequence parallelism: 1/P of each clip's tokens, and with the
    N x N matrix the process's heads over every token (Ulysses)."""
    config = replace(SMALL, batch_size=8, attention="sdpa", checkpoint_activations=False)
    one = plan_memory(config)
    ddp = plan_memory(replace(config, processes=4))
    fsdp = plan_memory(replace(config, processes=4, parallel="fsdp"))
    sequence = plan_memory(replace(config, processes=2, sequence_parallel=2, heads=4))
    assert ddp["parameters"] == one["parameters"] and ddp["optimizer"] == one["optimizer"]
    assert ddp["activations"] == pytest.approx(one["activations"] / 4)
    for part in ("parameters", "gradients", "optimizer", "ema"):
        assert fsdp[part] == pytest.approx(one[part] / 4)
    assert 0 < fsdp["gathered"] < one["parameters"] and ddp["gathered"] == 0
    assert sequence["activations"] == pytest.approx(one["activations"] / 2)
    math_one = plan_memory(replace(config, attention="math"))
    math_sequence = plan_memory(replace(config, attention="math", processes=2, sequence_parallel=2))
    # the scores are B (heads / P) N^2: half the heads, every token, so half of one process's
    assert math_sequence["transient"] == pytest.approx(math_one["transient"] / 2, rel=0.05)


def test_sharing_that_does_not_divide_is_a_clear_error():
    with pytest.raises(ValueError, match="batch_size=6 does not divide among the 4 data-parallel groups"):
        plan_memory(replace(SMALL, batch_size=6, processes=4))
    with pytest.raises(ValueError, match="sequence_parallel=3 must divide processes=4"):
        plan_memory(replace(SMALL, processes=4, sequence_parallel=3))
    with pytest.raises(ValueError, match="must divide the 4 token frames .* and the 4 heads"):
        plan_memory(replace(SMALL, processes=8, sequence_parallel=8))
    with pytest.raises(ValueError, match="parallel must be one of"):
        replace(SMALL, parallel="zero")


def test_720p_for_10_seconds_needs_several_gpus():
    config = MEMORY_PRESETS["720p10s"]
    assert config.frames >= 10 * 24 and (config.height, config.width) == (720, 1280) and config.processes > 1
    assert fits(config) and fits(dict(memory_variants(config))["bf16, flash, checkpointing"])
    assert not fits(replace(config, processes=1, sequence_parallel=1))  # one GPU cannot hold it, even with savers
    assert not fits(dict(memory_variants(config))["bf16, flash attention"])


# small video DiTs measured on 2 gloo processes (about 10 s each): activations dominate, as in video training
PARALLEL_CASES = {
    "ddp": dict(processes=2),
    "fsdp": dict(processes=2, parallel="fsdp"),
    "sequence parallel (Ulysses), captions": dict(processes=2, sequence_parallel=2, caption_tokens=12),
}


@pytest.mark.parametrize("changes", PARALLEL_CASES.values(), ids=PARALLEL_CASES.keys())
def test_per_process_plan_is_within_20_percent_of_two_processes_measured(changes):
    """The rise of each process's memory over one forward + backward on 2 CPU processes, against the plan's
    share of it (planned_step_rise): the largest of the two processes."""
    from minisora.memory import planned_step_rise, prepare_parallel_training_step

    config = replace(SMALL, attention="sdpa", checkpoint_activations=False, **changes)
    measured = measure_peak_memory(prepare_parallel_training_step, asdict(config), processes=config.processes)
    planned = planned_step_rise(config)
    assert 0.8 < measured / planned < 1.2, (measured / 2**20, planned / 2**20)
