"""The DiT paper's released checkpoints in minisora's DiT (minisora.pretrained), proved without the real files: a
small DiT of diffusers (an independent implementation, its own position table included) written out in the paper's
key names and layouts, loaded by `load_dit`, must compute what diffusers computes; damaged or foreign files are
clear errors."""
import math

import pytest
import torch

from minisora.models.embeddings import mae_position_embedding, sincos_position_embedding
from minisora.pretrained import load_dit

WIDTH, HEADS, DEPTH, CLASSES, LATENT_SIDE, PATCH = 32, 2, 2, 10, 8, 2


def diffusers_dit(width: int = WIDTH, heads: int = HEADS, depth: int = DEPTH):
    """diffusers' DiTTransformer2DModel, small, every weight random (its zero-initialised ones too), each block's
    copy of the timestep and label embedders tied to block 0's: diffusers gives every block its own, the paper's
    code one for all, so only a tied model has a checkpoint in the paper's layout. And one setting moved to the
    paper's: diffusers' timestep features use frequencies 10000^(-i / (half - 1)) (downscale_freq_shift=1), the
    paper's code (and minisora) 10000^(-i / half); the two agree at t = 0 only."""
    diffusers = pytest.importorskip("diffusers", reason="diffusers (the test extra) compares against its DiT")
    torch.manual_seed(0)
    model = diffusers.DiTTransformer2DModel(num_attention_heads=heads, attention_head_dim=width // heads,
                                            in_channels=4, out_channels=8, num_layers=depth, sample_size=LATENT_SIDE,
                                            patch_size=PATCH, num_embeds_ada_norm=CLASSES)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.2)
        first = model.transformer_blocks[0].norm1.emb
        for block in model.transformer_blocks:
            block.norm1.emb.load_state_dict(first.state_dict())
            block.norm1.emb.time_proj.downscale_freq_shift = 0
    return model.eval()


def in_the_papers_layout(model, depth: int = DEPTH) -> dict:
    """diffusers' DiT as the paper's code names and lays out its state dict (models.py of facebookresearch/DiT)."""
    theirs = model.state_dict()
    embedder = "transformer_blocks.0.norm1.emb."
    state = {
        "pos_embed": model.pos_embed.pos_embed.clone(),  # diffusers' own sin-cos table, (1, N, D)
        "x_embedder.proj.weight": theirs["pos_embed.proj.weight"],
        "x_embedder.proj.bias": theirs["pos_embed.proj.bias"],
        "t_embedder.mlp.0.weight": theirs[embedder + "timestep_embedder.linear_1.weight"],
        "t_embedder.mlp.0.bias": theirs[embedder + "timestep_embedder.linear_1.bias"],
        "t_embedder.mlp.2.weight": theirs[embedder + "timestep_embedder.linear_2.weight"],
        "t_embedder.mlp.2.bias": theirs[embedder + "timestep_embedder.linear_2.bias"],
        "y_embedder.embedding_table.weight": theirs[embedder + "class_embedder.embedding_table.weight"],
        "final_layer.adaLN_modulation.1.weight": theirs["proj_out_1.weight"],
        "final_layer.adaLN_modulation.1.bias": theirs["proj_out_1.bias"],
        "final_layer.linear.weight": theirs["proj_out_2.weight"],
        "final_layer.linear.bias": theirs["proj_out_2.bias"],
    }
    for index in range(depth):
        block, new = f"transformer_blocks.{index}.", f"blocks.{index}."
        for kind in ("weight", "bias"):
            state[new + f"attn.qkv.{kind}"] = torch.cat([theirs[block + f"attn1.to_{part}.{kind}"] for part in "qkv"])
            state[new + f"attn.proj.{kind}"] = theirs[block + f"attn1.to_out.0.{kind}"]
            state[new + f"mlp.fc1.{kind}"] = theirs[block + f"ff.net.0.proj.{kind}"]
            state[new + f"mlp.fc2.{kind}"] = theirs[block + f"ff.net.2.{kind}"]
            state[new + f"adaLN_modulation.1.{kind}"] = theirs[block + f"norm1.linear.{kind}"]
    return state


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = diffusers_dit()
    path = tmp_path_factory.mktemp("dit") / "DiT-tiny.pt"
    torch.save(in_the_papers_layout(model), path)
    return model, path


def test_a_checkpoint_in_the_papers_layout_computes_what_diffusers_computes(checkpoint):
    theirs, path = checkpoint
    ours = load_dit(path, heads=HEADS)
    config = ours.config
    assert (config.hidden, config.depth, config.heads, config.patch_size) == (WIDTH, DEPTH, HEADS, PATCH)
    assert (config.input_size, config.num_classes, config.learn_sigma) == (LATENT_SIDE, CLASSES, True)
    # built on the meta device and given the file's tensors: nothing may be left without memory
    assert not any(tensor.is_meta for tensor in [*ours.parameters(), *ours.buffers()])
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, LATENT_SIDE, LATENT_SIDE, generator=generator)
    labels = torch.tensor([1, 7, CLASSES])  # the null label too
    # float32 rounding; at late timesteps diffusers' sin and cos of t * frequency are taken in float32 (arguments up
    # to 999 radians, off by about 6e-5), minisora's in float64, so the outputs differ more there
    for timesteps, tolerance in (([0, 5, 9], 2e-5), ([250, 500, 999], 5e-4)):
        with torch.no_grad():
            expected = theirs(x, timestep=torch.tensor(timesteps), class_labels=labels).sample
            found = ours(x[:, :, None], torch.tensor(timesteps), labels)[:, :, 0]
        assert expected.abs().mean() > 0.5  # random weights: a far from trivial output
        torch.testing.assert_close(found, expected, rtol=1e-5, atol=tolerance)


def test_maes_position_table_is_minisoras_with_its_channels_moved():
    """MAE's meshgrid puts the column first and sin before cos: the same numbers in another order, so a model given
    the wrong one sees every position scrambled."""
    theirs, ours = mae_position_embedding(4, 6, 16), sincos_position_embedding((1, 4, 6), 16)
    quarters = theirs.chunk(4, dim=1)  # sin w, cos w, sin h, cos h
    assert torch.equal(torch.cat([quarters[3], quarters[2], quarters[1], quarters[0]], dim=1), ours)
    assert not torch.allclose(theirs, ours)
    assert torch.allclose(theirs[7, :4], torch.sin(torch.tensor(1.0) / 10000 ** (torch.arange(4) / 4)))  # w = 1


def test_files_that_are_not_the_papers_dit_are_clear_errors(checkpoint, tmp_path):
    _, path = checkpoint
    state = torch.load(path, weights_only=True)
    with pytest.raises(FileNotFoundError, match="dl.fbaipublicfiles.com/DiT"):
        load_dit(tmp_path / "missing.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_dit(truncated)
    with pytest.raises(ValueError, match=f"a DiT for {8 * LATENT_SIDE} x {8 * LATENT_SIDE} images .* not 256"):
        load_dit(path, image_size=256, heads=HEADS)  # a 64 x 64 checkpoint used at 256
    with pytest.raises(ValueError, match="width of 32 is none of the paper's DiT sizes"):
        load_dit(path)  # heads unknown for this width

    def saved(changed: dict):
        changed_path = tmp_path / "changed.pt"
        torch.save(changed, changed_path)
        return changed_path

    with pytest.raises(ValueError, match="no 'blocks.1.attn.proj.weight'"):
        load_dit(saved({key: value for key, value in state.items() if key != "blocks.1.attn.proj.weight"}), heads=HEADS)
    with pytest.raises(ValueError, match="1 tensors minisora's DiT has no place for: blocks.0.attn.extra"):
        load_dit(saved({**state, "blocks.0.attn.extra": torch.zeros(1)}), heads=HEADS)
    rows_then_columns = dict(state, pos_embed=sincos_position_embedding((1, LATENT_SIDE // PATCH,
                                                                         LATENT_SIDE // PATCH), WIDTH)[None])
    with pytest.raises(ValueError, match="pos_embed is not the sin-cos table of MAE's layout"):
        load_dit(saved(rows_then_columns), heads=HEADS)
    with pytest.raises(ValueError, match="no 'x_embedder.proj.weight'"):
        load_dit(saved({"weight": torch.zeros(2)}))
    assert math.isqrt(state["pos_embed"].shape[1]) ** 2 == state["pos_embed"].shape[1]


def tiny_learned_sigma_dit():
    """A tiny random learned-sigma DiT in float64, every weight moved off its initialisation (the zero-initialised
    modulation and output layers too): a network that does something."""
    from minisora.models.dit import DiT, DiTConfig

    torch.manual_seed(0)
    model = DiT(DiTConfig(input_size=8, in_channels=4, patch_size=4, hidden=32, depth=1, heads=2, num_classes=CLASSES,
                          position_layout="mae")).double().eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    return model


def test_dits_diffusion_through_minisoras_samplers_is_ddpms_algorithm_2():
    """The tiny DiT behind `dit_denoiser`: the ancestral sampler in sigma space on all 1000 of the paper's
    linear-beta steps (eta = 1) draws what DDPM's Algorithm 2 draws from its noise head, and deterministic DDIM is
    Euler's method, sample for sample: the denoiser's timesteps, noise head and schedule are the paper's."""
    from minisora.diffusion.ddim import ddim_sample
    from minisora.diffusion.ddpm import ddpm_sample
    from minisora.diffusion.samplers import sample_euler, sample_euler_ancestral
    from minisora.diffusion.schedules import alphas_cumprod, linear_betas, respace_timesteps, sigmas_from_timesteps
    from minisora.pretrained import dit_denoiser

    model = tiny_learned_sigma_dit()

    def noise_head(x, t, **cond):  # the first C of the 2C output channels
        return model(x, t, **cond).chunk(2, dim=1)[0]

    schedule, labels = alphas_cumprod(linear_betas()), torch.tensor([3, CLASSES])
    x_T = torch.randn(2, 4, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ddpm = ddpm_sample(noise_head, x_T, schedule, generator=torch.Generator().manual_seed(2), label=labels)
        sigmas = sigmas_from_timesteps(schedule, torch.arange(999, -1, -1))
        ancestral = sample_euler_ancestral(dit_denoiser(model), x_T * (1 + sigmas[0] ** 2).sqrt(), sigmas,
                                           cond={"label": labels}, generator=torch.Generator().manual_seed(2))
        timesteps = respace_timesteps(1000, 25)
        few = sigmas_from_timesteps(schedule, timesteps)
        ddim = ddim_sample(noise_head, x_T, schedule, timesteps, label=labels)
        euler = sample_euler(dit_denoiser(model), x_T * (1 + few[0] ** 2).sqrt(), few, cond={"label": labels})
    assert ddpm.abs().mean() > 0.1 and not torch.allclose(ddpm[0], ddpm[1])
    torch.testing.assert_close(ancestral, ddpm, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(euler, ddim, rtol=1e-8, atol=1e-8)


def test_dits_own_sampling_with_its_learned_variance_is_improved_ddpms():
    """The paper samples with its learned variance (Improved DDPM's p_sample on a respaced chain, guidance by its
    forward_with_cfg on 3 of 4 channels). minisora's sampler `ddpm_learned_variance` in sigma space, through
    `dit_denoiser` and `GuidedDenoiser(channels=3)`, draws what DDPM's own `ddpm_sample(variance="learned")` draws
    (float64, the same noise): on all 1000 steps; on 25 respaced steps, where the reference is the shorter chain of
    Nichol & Dhariwal's Section 4 (its own betas, the network told the original timesteps); and guided, where the
    reference guides the noise as the paper's code does. Guiding 3 channels is not guiding 4."""
    from minisora.diffusion import get_sampler
    from minisora.diffusion.ddpm import ddpm_sample
    from minisora.diffusion.guidance import GuidedDenoiser
    from minisora.diffusion.schedules import alphas_cumprod, linear_betas, respace_timesteps, sigmas_from_timesteps
    from minisora.pretrained import dit_denoiser

    model, sampler = tiny_learned_sigma_dit(), get_sampler("ddpm_learned_variance")
    schedule, labels = alphas_cumprod(linear_betas()), torch.tensor([3, 7])
    x_T = torch.randn(2, 4, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def forward_with_cfg(channels):  # the paper's models.py: eps guided on its first channels, the rest conditional
        def network(x, t, label):
            output = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([label, torch.full_like(label, CLASSES)]))
            conditional, unconditional = output.chunk(2)
            guided = unconditional[:, :channels] + 4.0 * (conditional[:, :channels] - unconditional[:, :channels])
            return torch.cat([guided, conditional[:, channels:]], dim=1)
        return network

    def ours(timesteps, denoiser):
        sigmas = sigmas_from_timesteps(schedule, timesteps)
        return sampler(denoiser, x_T * (1 + sigmas[0] ** 2).sqrt(), sigmas, cond={"label": labels},
                       generator=torch.Generator().manual_seed(2))

    def reference(timesteps, network):
        kept = timesteps.flip(0)  # increasing: the shorter chain's alpha_bar are the kept steps' own
        return ddpm_sample(lambda x, t, **cond: network(x, kept[t], **cond), x_T, schedule[kept], variance="learned",
                           generator=torch.Generator().manual_seed(2), label=labels)

    every, few = torch.arange(999, -1, -1), respace_timesteps(1000, 25)
    guided = GuidedDenoiser(dit_denoiser(model), 4.0, {"label": CLASSES}, channels=3)
    all_channels = GuidedDenoiser(dit_denoiser(model), 4.0, {"label": CLASSES})
    with torch.no_grad():
        pairs = {"1000 steps": (ours(every, dit_denoiser(model)), reference(every, model)),
                 "25 steps": (ours(few, dit_denoiser(model)), reference(few, model)),
                 "guided, 3 channels": (ours(few, guided), reference(few, forward_with_cfg(3))),
                 "guided, 4 channels": (ours(few, all_channels), reference(few, forward_with_cfg(4)))}
    for name, (mine, theirs) in pairs.items():
        assert mine.abs().mean() > 0.1, name
        torch.testing.assert_close(mine, theirs, rtol=1e-8, atol=1e-8, msg=name)
    assert (pairs["guided, 3 channels"][0] - pairs["guided, 4 channels"][0]).abs().max() > 1e-2
    assert (pairs["25 steps"][0] - pairs["1000 steps"][0]).abs().max() > 1e-2


def diffusers_autoencoder():
    """diffusers' AutoencoderKL, small (2 levels of widths 32 and 64), every weight random."""
    diffusers = pytest.importorskip("diffusers", reason="diffusers (the test extra) compares against its autoencoder")
    torch.manual_seed(3)
    model = diffusers.AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                                    up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(32, 64),
                                    layers_per_block=1, latent_channels=4, norm_num_groups=32, sample_size=16)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return model.eval()


def in_latent_diffusions_layout(state: dict, levels: int = 2) -> dict:
    """diffusers' autoencoder names as latent diffusion's code names its modules (its decoder levels numbered from
    the full resolution; attention's projections as 1 x 1 convolutions)."""
    import re

    renamed = {}
    for name, tensor in state.items():
        for pattern, replacement in [(r"mid_block\.resnets\.0\.", "mid.block_1."),
                                     (r"mid_block\.resnets\.1\.", "mid.block_2."),
                                     (r"mid_block\.attentions\.0\.group_norm\.", "mid.attn_1.norm."),
                                     (r"mid_block\.attentions\.0\.to_(q|k|v)\.", r"mid.attn_1.\1."),
                                     (r"mid_block\.attentions\.0\.to_out\.0\.", "mid.attn_1.proj_out."),
                                     (r"down_blocks\.(\d+)\.resnets\.", r"down.\1.block."),
                                     (r"down_blocks\.(\d+)\.downsamplers\.0\.", r"down.\1.downsample."),
                                     (r"conv_shortcut", "nin_shortcut"), (r"conv_norm_out", "norm_out")]:
            name = re.sub(pattern, replacement, name)
        up = re.match(r"decoder\.up_blocks\.(\d+)\.(resnets|upsamplers\.0)\.(.*)", name)
        if up:
            level = levels - 1 - int(up.group(1))
            name = f"decoder.up.{level}." + ("block." if up.group(2) == "resnets" else "upsample.") + up.group(3)
        if ".attn_1." in name and tensor.dim() == 2:
            tensor = tensor[:, :, None, None]
        renamed[name] = tensor
    return renamed


def test_stable_diffusions_autoencoder_in_either_layout_computes_what_diffusers_computes(tmp_path):
    from minisora.pretrained import load_image_vae

    theirs = diffusers_autoencoder()
    theirs.save_pretrained(tmp_path / "diffusers")  # config.json + diffusion_pytorch_model.safetensors
    torch.save({"state_dict": {f"first_stage_model.{name}": tensor for name, tensor in
                               in_latent_diffusions_layout(theirs.state_dict()).items()}}, tmp_path / "ldm.ckpt")
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(4)) * 2 - 1
    with torch.no_grad():
        posterior = theirs.encode(images).latent_dist
        decoded = theirs.decode(posterior.mean).sample
    for path in (tmp_path / "diffusers", tmp_path / "ldm.ckpt"):
        ours = load_image_vae(path)
        assert ours.config.channel_multipliers == (1, 2) and ours.config.blocks_per_level == 1
        with torch.no_grad():
            found = ours.encode(images)
            torch.testing.assert_close(found.mean, posterior.mean, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(found.log_variance, posterior.logvar, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(ours.decode(posterior.mean), decoded, rtol=1e-5, atol=1e-5)
        assert decoded.abs().mean() > 0.1 and posterior.mean.shape == (2, 4, 8, 8)


def test_autoencoder_files_that_do_not_fit_are_clear_errors(tmp_path):
    from minisora.pretrained import load_image_vae

    with pytest.raises(FileNotFoundError, match="not a diffusers autoencoder folder.*sd-vae-ft-mse"):
        load_image_vae(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_image_vae(tmp_path / "vae.ckpt")
    state = in_latent_diffusions_layout(diffusers_autoencoder().state_dict())
    torch.save({**state, "decoder.extra.weight": torch.zeros(1)}, tmp_path / "extra.ckpt")
    with pytest.raises(ValueError, match="left over \\['decoder.extra.weight'\\]"):
        load_image_vae(tmp_path / "extra.ckpt")
    del state["decoder.mid.attn_1.q.weight"]
    torch.save(state, tmp_path / "missing.ckpt")
    with pytest.raises(ValueError, match="missing \\['decoder.middle.1.attention.query.weight'\\]"):
        load_image_vae(tmp_path / "missing.ckpt")


def test_sample_imagenet_writes_one_image_per_class_from_files_in_the_published_layouts(tmp_path):
    """The command on a one-block DiT of DiT-S's width (so its heads are the paper's) in the paper's layout and a
    small autoencoder in diffusers' folder layout (latents 8 x 8 with 4 channels, decoded 2x): a PNG of one image
    per class, the same for the same seed; a class the checkpoint lacks and a missing file are clear errors before
    any sampling."""
    import subprocess
    import sys
    from pathlib import Path

    import numpy
    from PIL import Image

    from minisora.pretrained import load_dit, load_image_vae, sample_classes

    torch.save(in_the_papers_layout(diffusers_dit(width=384, heads=6, depth=1), depth=1), tmp_path / "DiT-S.pt")
    diffusers_autoencoder().save_pretrained(tmp_path / "vae")
    root = Path(__file__).resolve().parents[1]

    def command(*arguments):
        return subprocess.run([sys.executable, "-m", "minisora", "sample-imagenet", "--dit", str(tmp_path / "DiT-S.pt"),
                               "--vae", str(tmp_path / "vae"), "--steps", "4", *map(str, arguments)], cwd=root,
                              capture_output=True, text=True, timeout=300)

    for name in ("first.png", "again.png"):
        result = command("--class", 1, "--class", 7, "--seed", 5, "--out", tmp_path / name)
        assert result.returncode == 0, result.stderr[-2000:]
    first, again = (torch.from_numpy(numpy.array(Image.open(tmp_path / name))) for name in ("first.png", "again.png"))
    assert Image.open(tmp_path / "first.png").size == (2 * 16, 16) and torch.equal(first, again)
    dit, vae = load_dit(tmp_path / "DiT-S.pt"), load_image_vae(tmp_path / "vae")
    images = sample_classes(dit, vae, [1, 7], steps=4, guidance=4.0, seed=5)
    assert images.shape == (2, 3, 16, 16) and not torch.allclose(images[0], images[1])
    with pytest.raises(ValueError, match="classes must be among the checkpoint's 10"):
        sample_classes(dit, vae, [10])
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        sample_classes(dit, vae, [1], precision="fp8")
    missing = command("--class", 1, "--vae", tmp_path / "nowhere", "--out", tmp_path / "never.png")
    assert missing.returncode == 2 and "no autoencoder at" in missing.stderr
    assert not (tmp_path / "never.png").exists()
    kept = (tmp_path / "first.png").read_bytes()
    refused = command("--class", 3, "--out", tmp_path / "first.png")
    assert refused.returncode == 2 and "exists; pass --overwrite" in refused.stderr
    assert (tmp_path / "first.png").read_bytes() == kept
    # the paper's own sampling (its learned variance, 3 channels guided) replaces the grid when asked to
    papers = command("--class", 1, "--class", 7, "--seed", 5, "--sampler", "ddpm_learned_variance",
                     "--guided-channels", 3, "--out", tmp_path / "first.png", "--overwrite")
    assert papers.returncode == 0, papers.stderr[-2000:]
    assert not torch.equal(torch.from_numpy(numpy.array(Image.open(tmp_path / "first.png"))), again)


def small_random_dit():
    """A small DiT of the paper's layout (learned sigma, MAE's table; 8 x 8 latents of 4 channels), in float32, every
    weight moved off its initialisation so that it computes something (the zero-initialised layers too)."""
    from minisora.models.dit import DiT, DiTConfig

    torch.manual_seed(0)
    dit = DiT(DiTConfig(input_size=8, in_channels=4, patch_size=2, hidden=64, depth=2, heads=4, num_classes=CLASSES,
                        position_layout="mae")).eval()
    with torch.no_grad():
        for parameter in dit.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return dit


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: samples on it and on the CPU")
@pytest.mark.parametrize("sampler", ["dpmpp_2m", "ddpm_learned_variance"])
def test_sampling_on_a_gpu_draws_the_cpus_images(sampler):
    """A DiT and autoencoder moved to the GPU sample the images they sample on the CPU (the noise comes from the
    seeded CPU generator either way; float32, TF32 off); bf16 autocast stays near them."""
    from minisora.models.image_vae import ImageVAE, ImageVAEConfig
    from minisora.pretrained import sample_classes

    dit = small_random_dit()
    vae = ImageVAE(ImageVAEConfig(channels=32, channel_multipliers=(1, 2), blocks_per_level=1)).eval()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    on_cpu = sample_classes(dit, vae, [1, 7], steps=10, sampler=sampler, seed=3, guided_channels=3)
    on_gpu = sample_classes(dit.cuda(), vae.cuda(), [1, 7], steps=10, sampler=sampler, seed=3, guided_channels=3)
    in_bf16 = sample_classes(dit, vae, [1, 7], steps=10, sampler=sampler, seed=3, guided_channels=3,
                             precision="bf16")
    assert on_gpu.device.type == "cpu" and on_cpu.abs().mean() > 0.05
    torch.testing.assert_close(on_gpu, on_cpu, rtol=0, atol=1e-3)
    assert (in_bf16 - on_cpu).abs().mean() < 0.05


def released_files():
    """The released DiT-XL/2 (256) and Stable Diffusion VAE where `python -m minisora download` puts them, or where
    MINISORA_DIT and MINISORA_VAE point (None where they are not)."""
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    dit = Path(os.environ.get("MINISORA_DIT", root / "weights" / "DiT-XL-2-256x256.pt"))
    vae = Path(os.environ.get("MINISORA_VAE", root / "weights" / "sd-vae-ft-ema"))
    return (dit, vae) if dit.is_file() and vae.exists() else None


def a_test_image(side: int = 256) -> torch.Tensor:
    """A smooth synthetic picture in [-1, 1], (1, 3, side, side): a colour gradient, a disc and a square."""
    rows, columns = torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side), indexing="ij")
    image = torch.stack([rows * 0.6, columns * 0.6, (rows + columns) * 0.3])
    disc = (rows - 0.3) ** 2 + (columns + 0.3) ** 2 < 0.12
    square = (rows + 0.4).abs().maximum((columns - 0.4).abs()) < 0.25
    image[:, disc] = torch.tensor([0.9, -0.6, -0.5])[:, None]
    image[:, square] = torch.tensor([-0.7, -0.5, 0.9])[:, None]
    return image[None]


def released_weights_checks(dit, vae) -> dict:
    """What any trained pair does and random weights do not: the autoencoder reconstructs a smooth picture (PSNR in
    dB), and at t = 900 of 1000 (alpha_bar about 3e-4) the DiT predicts the noise of that picture's noised latent
    almost exactly, since x_t is nearly all noise (mean squared error; predicting zero scores 1)."""
    from minisora.diffusion.ddpm import q_sample
    from minisora.diffusion.schedules import alphas_cumprod, linear_betas

    image = a_test_image(8 * dit.config.input_size)
    with torch.no_grad():
        latents = vae.to_latents(image)
        reconstruction = vae.from_latents(latents).clamp(-1, 1)
        psnr = 10 * math.log10(4 / float((reconstruction - image).pow(2).mean()))
        t = torch.tensor([900])
        noise = torch.randn(latents[:, :, None].shape, generator=torch.Generator().manual_seed(0))
        x_t = q_sample(latents[:, :, None], t, alphas_cumprod(linear_betas()), noise)
        predicted = dit(x_t, t.float(), torch.tensor([dit.config.num_classes])).chunk(2, dim=1)[0]
    return {"psnr": psnr, "noise_error": float((predicted - noise).pow(2).mean())}


@pytest.mark.skipif(released_files() is None, reason="the released files are not here: `python -m minisora "
                    "download` puts DiT-XL-2-256x256.pt and sd-vae-ft-ema in weights/ (or name them by MINISORA_DIT "
                    "and MINISORA_VAE)")
def test_the_released_files_load_and_do_what_trained_models_do():
    """With the real files (never in CI: nothing downloads there): DiT-XL/2's configuration from its tensors, every
    key used, and the checks that random weights fail (`released_weights_checks`)."""
    from minisora.models.dit import count_parameters
    from minisora.pretrained import load_dit, load_image_vae

    dit_path, vae_path = released_files()
    dit, vae = load_dit(dit_path), load_image_vae(vae_path)
    assert (dit.config.hidden, dit.config.depth, dit.config.heads, dit.config.patch_size) == (1152, 28, 16, 2)
    assert dit.config.learn_sigma and dit.config.num_classes == 1000 and dit.config.input_size == 32
    assert round(count_parameters(dit) / 1e6, 1) == 674.8
    checks = released_weights_checks(dit, vae)
    assert checks["psnr"] > 24, checks
    assert checks["noise_error"] < 0.05, checks


def test_random_weights_fail_the_released_weights_checks():
    """The checks the released files must pass are not passed by untrained models of the same kinds (small ones)."""
    from minisora.models.image_vae import ImageVAE, ImageVAEConfig

    dit = small_random_dit()
    vae = ImageVAE(ImageVAEConfig(channels=32, channel_multipliers=(1, 2, 2, 2), blocks_per_level=1)).eval()
    checks = released_weights_checks(dit, vae)
    assert checks["psnr"] < 24 and checks["noise_error"] > 0.05, checks
