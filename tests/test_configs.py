"""Every numeric field of every configuration is range-checked where the configuration is built: zero and negative
values are clear errors that name the field, except where zero is a setting (off, none, lossless, a seed)."""
import dataclasses

import pytest

from minisora.config import apply_overrides
from minisora.data.tiny import TinyDataConfig
from minisora.memory import MemoryConfig
from minisora.train.images import ImagesConfig
from minisora.train.toy2d import Toy2DConfig
from minisora.train.vae import VAEConfig
from minisora.video_config import VideoConfig

# where 0 means something: written here, apart from the configurations' own range tables, so that a table that
# forgets a field or allows too much fails this test
ZERO_IS_A_SETTING = {
    VideoConfig: {"given_noise", "unshifted_share", "warmup_steps", "clip_norm", "ema_decay", "expert_steps",
                  "expert_ema_decay", "caption_dropout", "guidance", "guidance_min_sigma", "checkpoint_every", "seed"},
    Toy2DConfig: {"ema_decay", "seed"},
    ImagesConfig: {"ema_decay", "class_dropout", "guidance", "seed"},
    VAEConfig: {"kl_weight", "ema_decay", "checkpoint_every", "seed"},
    TinyDataConfig: {"quality", "seed"},
    MemoryConfig: {"reserved_gib", "caption_tokens"},
}


def numeric_fields(config_class):
    return [field.name for field in dataclasses.fields(config_class) if field.type in (int, float, "int", "float")]


@pytest.mark.parametrize("config_class", list(ZERO_IS_A_SETTING), ids=lambda cls: cls.__name__)
def test_zero_and_negative_values_are_refused_by_name_unless_zero_is_a_setting(config_class):
    fields = numeric_fields(config_class)
    assert len(fields) >= 6
    for name in fields:
        with pytest.raises(ValueError, match=f"^{name}=-1 is outside"):
            config_class(**{name: -1})
        if name in ZERO_IS_A_SETTING[config_class]:
            assert getattr(config_class(**{name: 0}), name) == 0
        else:
            with pytest.raises(ValueError, match=f"^{name}=0 is outside"):
                config_class(**{name: 0})
    with pytest.raises(ValueError, match="is outside"):
        apply_overrides(config_class(), [f"--{fields[0]}=-5"])  # the command line goes through the same check


def test_a_bare_boolean_flag_means_true():
    assert apply_overrides(VideoConfig(), ["--overwrite"]).overwrite is True
    with pytest.raises(ValueError, match="write it as --key=value"):
        apply_overrides(VideoConfig(), ["--steps"])


def test_a_finished_run_is_never_replaced_without_being_asked(tmp_path, capsys):
    """The second `train` into a finished run's folder is refused before any work and leaves every file as it was;
    --overwrite replaces it; an unfinished run's folder wants --resume or --overwrite."""
    from minisora.__main__ import main

    command = ["train", "--preset", "toy2d", "--steps=20", "--num_samples=50", "--sampling_steps=2",
               f"--out_dir={tmp_path}"]
    assert main(command) == 0
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    with pytest.raises(SystemExit) as exit_code:
        main(command + ["--steps=3"])
    assert exit_code.value.code == 2 and "holds a finished run" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before
    assert main(command + ["--steps=3", "--overwrite"]) == 0
    assert '"steps": 3' in (tmp_path / "metrics.json").read_text()
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "checkpoint.pt").write_bytes(b"a run's state")
    with pytest.raises(SystemExit):
        main(["train", "--preset", "vae", f"--out_dir={unfinished}"])
    assert "holds an unfinished run (checkpoint.pt); pass --resume=true" in capsys.readouterr().err


def test_a_gpu_the_machine_lacks_is_a_clear_error(capsys):
    import torch
    from minisora.__main__ import main

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(SystemExit) as exit_code:
        main(["train", "--preset", "tiny", "--device=cuda", "--out_dir=/nonexistent/never-made"])
    assert exit_code.value.code == 2 and "PyTorch sees no CUDA GPU" in capsys.readouterr().err


@pytest.mark.parametrize("config_class", [VideoConfig, Toy2DConfig, ImagesConfig], ids=lambda cls: cls.__name__)
def test_a_sampler_the_model_cannot_use_is_refused_before_training(config_class):
    """An unknown sampler, or the one that needs a learned variance (these models have none), is an error where the
    configuration is built: not after the training, when the samples are drawn."""
    with pytest.raises(ValueError, match="unknown sampler 'rk45'; choose one of .*'heun'"):
        config_class(sampler="rk45")
    with pytest.raises(ValueError, match="learned variance, which this model does not have"):
        config_class(sampler="ddpm_learned_variance")
    assert config_class(sampler="flow_heun").sampler == "flow_heun"


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_device_auto_picks_cuda_then_mps_then_the_cpu(monkeypatch, cuda, mps, expected):
    import torch
    from minisora.config import resolve_device
    from minisora.train.vae import VAEConfig

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert resolve_device("auto") == expected
    assert VideoConfig().device == expected and VAEConfig(device="auto").device == expected
    assert resolve_device("cpu") == "cpu" and VideoConfig(device="cpu").device == "cpu"


@pytest.mark.parametrize("device, message", [("mps", "no Apple GPU"), ("cuda:x", "index must be a number"),
                                             ("tpu", "must be 'auto', 'cpu'")])
def test_a_device_the_machine_lacks_or_cannot_be_is_a_clear_error(monkeypatch, device, message):
    import torch
    from minisora.config import check_device

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # so that the index is what is checked
    with pytest.raises(ValueError, match=message):
        check_device(device)


def test_a_gpu_index_beyond_the_machines_is_a_clear_error(monkeypatch):
    import torch
    from minisora.config import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert check_device("cuda:0") == "cuda:0"
    with pytest.raises(ValueError, match="has 1 CUDA GPU"):
        check_device("cuda:1")
