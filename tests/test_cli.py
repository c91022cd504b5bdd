"""The command line and config overrides."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from minisora.config import apply_overrides
from minisora.train.toy2d import Toy2DConfig

ROOT = Path(__file__).resolve().parents[1]


def test_overrides_take_the_field_types():
    config = apply_overrides(Toy2DConfig(), ["--steps=7", "--learning_rate=0.5", "--dataset=ring"])
    assert (config.steps, config.learning_rate, config.dataset) == (7, 0.5, "ring")


@pytest.mark.parametrize("override, message", [
    ("--stepz=3", "known keys: .*steps"),
    ("--steps=many", "takes a int"),
    ("steps=3", "--key=value"),
])
def test_bad_overrides_are_clear_errors(override, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(Toy2DConfig(), [override])


def test_train_command_writes_its_report(tmp_path):
    result = subprocess.run([sys.executable, "-m", "minisora", "train", "--preset", "toy2d", "--steps=30",
                             "--num_samples=200", "--sampling_steps=4", f"--out_dir={tmp_path}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "sliced Wasserstein" in result.stdout
    for name in ("samples.png", "loss.png", "metrics.json"):
        assert (tmp_path / name).stat().st_size > 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["config"]["steps"] == 30 and metrics["samples"] > 0


def test_unknown_key_on_the_command_line_fails_with_the_list():
    result = subprocess.run([sys.executable, "-m", "minisora", "train", "--stepz=3"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0 and "known keys" in result.stderr


def test_images_preset_runs_end_to_end(tmp_path):
    result = subprocess.run([sys.executable, "-m", "minisora", "train", "--preset", "images", "--steps=3",
                             "--hidden=32", "--depth=1", "--num_images=600", "--samples_per_class=2",
                             "--sampling_steps=2", f"--out_dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "class accuracy" in result.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) >= {"trained", "untrained", "classifier_accuracy_on_real", "config"}
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_vae_preset_trains_writes_videos_and_resumes(tmp_path):
    command = [sys.executable, "-m", "minisora", "train", "--preset", "vae", "--steps=4", "--image_size=16",
               "--num_frames=5", "--channels=8", "--latent_channels=4", "--held_out=4", "--checkpoint_every=2",
               f"--out_dir={tmp_path}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "held-out PSNR" in result.stdout
    for name in ("checkpoint.pt", "vae.pt", "reconstructions.gif", "reconstructions.mp4", "reconstructions.png",
                 "loss.png", "metrics.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["latent_shape"] == [4, 2, 4, 4] and metrics["compression_ratio"] == 48
    resumed = subprocess.run(command + ["--resume=true"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((tmp_path / "metrics.json").read_text())["psnr"] == pytest.approx(metrics["psnr"])
    other = subprocess.run(command + ["--resume=true", "--latent_channels=8"], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert other.returncode != 0 and "latent_channels: checkpoint 4, now 8" in other.stderr


@pytest.mark.parametrize("command, sampler, message", [
    ("sample", "rk45", "unknown sampler 'rk45'; choose one of"),
    ("sample", "ddpm_learned_variance", "learned variance, which this model does not have"),
    ("sample-imagenet", "rk45", "unknown sampler 'rk45'; choose one of .*ddpm_learned_variance"),
])
def test_a_sampler_the_command_cannot_use_is_an_error_before_any_work(command, sampler, message, capsys, tmp_path):
    """sample takes the samplers any denoiser drives (its models have no learned variance); sample-imagenet those
    and DiT's learned-variance one. Both say so before reading a file (none here exists)."""
    import re

    from minisora.__main__ import main

    files = ["--prompt", "a circle", "--checkpoint", str(tmp_path / "none.pt")] if command == "sample" else \
        ["--class", "1", "--dit", str(tmp_path / "none.pt")]
    with pytest.raises(SystemExit) as exit_code:
        main([command, "--sampler", sampler, *files])
    assert exit_code.value.code == 2 and re.search(message, capsys.readouterr().err)


@pytest.mark.parametrize("case", ["unreadable videos", "no such folder", "a file for out_dir", "not a checkpoint",
                                  "no such image"])
def test_bad_input_below_a_command_is_one_line_not_a_traceback(case, tmp_path, capsys):
    """Errors raised deep below a command (a data folder's videos, the run folder, a checkpoint, an image) reach the
    user as one line and exit status 2, before any training."""
    from minisora.__main__ import main

    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "clip.mp4").write_bytes(b"not a video at all")
    (folder / "captions.jsonl").write_text(json.dumps({"video": "clip.mp4", "caption": "a red circle"}) + "\n")
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "model.pt").write_bytes(b"garbage")
    arguments = {
        "unreadable videos": ["train", "--preset", "tiny", f"--data={folder}", f"--out_dir={tmp_path / 'run'}"],
        "no such folder": ["train", "--preset", "tiny", f"--data={tmp_path / 'missing'}", f"--out_dir={tmp_path / 'run'}"],
        "a file for out_dir": ["train", "--preset", "toy2d", f"--out_dir={tmp_path / 'a_file'}", "--steps=1"],
        "not a checkpoint": ["sample", "--checkpoint", str(tmp_path / "model.pt"), "--prompt", "a red circle",
                             "--out", str(tmp_path / "samples")],
        "no such image": ["sample", "--checkpoint", str(tmp_path / "model.pt"), "--prompt", "a red circle",
                          "--first-frame", str(tmp_path / "missing.png"), "--out", str(tmp_path / "samples")],
    }[case]
    with pytest.raises(SystemExit) as stopped:
        main(arguments)
    assert stopped.value.code == 2
    printed = capsys.readouterr().err.strip()
    assert printed.startswith("error: ") and "Traceback" not in printed, printed
    assert not (tmp_path / "run" / "model.pt").exists()
