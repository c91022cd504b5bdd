"""minisora.pipeline: one object for a trained model. Every task gives what `python -m minisora sample` gives for the
same seed (the same files, byte for byte); a saved folder loads back to the same model; inputs come as tensors,
PIL images or files; bad input is a clear error. The model is conftest's untrained toy (built, not trained: the plumbing
is what is checked here)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from minisora.__main__ import main
from minisora.pipeline import TinySora, Videos
from minisora.trained_model import load_model

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a large red square moving right slowly"


TASKS = {  # CLI flags, and the same task through the pipeline
    "text to video": ([], lambda sora, folder, **common: sora.text_to_video(PROMPT, **common)),
    "text to image": (["--frames", "1"], lambda sora, folder, **common: sora.text_to_image(PROMPT, **common)),
    "long video": (["--frames", "12"], lambda sora, folder, **common: sora.text_to_video(PROMPT, frames=12, **common)),
    "image to video": (["--first-frame", "first.png"],
                       lambda sora, folder, **common: sora.image_to_video(folder / "first.png", PROMPT, **common)),
    "interpolate": (["--first-frame", "first.png", "--last-frame", "first.png"],
                    lambda sora, folder, **common: sora.interpolate(folder / "first.png", folder / "first.png", PROMPT,
                                                                 **common)),
    "loop": (["--loop"], lambda sora, folder, **common: sora.loop(PROMPT, **common)),
    "extend forward": (["--extend", "clip.mp4"], lambda sora, folder, **common: sora.extend(folder / "clip.mp4", PROMPT,
                                                                                         **common)),
    "extend backward": (["--extend-backward", "clip.mp4", "--frames", "12"],
                        lambda sora, folder, **common: sora.extend(folder / "clip.mp4", PROMPT, backward=True,
                                                                  frames=12, **common)),
    "edit": (["--edit", "clip.mp4", "--strength", "0.5"],
             lambda sora, folder, **common: sora.edit(folder / "clip.mp4", PROMPT, strength=0.5, **common)),
}


@pytest.mark.parametrize("task", TASKS)
def test_every_task_gives_what_the_command_gives_for_the_same_seed(task, untrained_toy, tmp_path):
    flags, call = TASKS[task]
    flags = [str(untrained_toy / flag) if flag.endswith((".png", ".mp4")) else flag for flag in flags]
    assert main(["sample", "--checkpoint", str(untrained_toy / "model.pt"), "--prompt", PROMPT, "--steps", "2",
                 "--num", "2", "--seed", "5", "--sampler", "euler", "--out", str(tmp_path / "command"), *flags]) == 0
    sora = TinySora.from_pretrained(untrained_toy / "model.pt", device="cpu")
    videos = call(sora, untrained_toy, num=2, steps=2, seed=5, sampler="euler")
    assert isinstance(videos, Videos) and videos.captions == [PROMPT, PROMPT]
    videos.save(tmp_path / "pipeline")
    written = sorted(path.name for path in (tmp_path / "command").iterdir())
    assert written == sorted(path.name for path in (tmp_path / "pipeline").iterdir())
    for name in written:
        assert (tmp_path / "command" / name).read_bytes() == (tmp_path / "pipeline" / name).read_bytes(), name
    kind = "png" if task == "text to image" else "mp4"
    assert f"00.{kind}" in written and f"01.{kind}" in written


def test_a_saved_folder_loads_back_to_the_same_model(untrained_toy, tmp_path):
    sora = TinySora.from_pretrained(untrained_toy / "model.pt", device="cpu")
    folder = sora.save_pretrained(tmp_path / "shared", scores={"trained": {"adherence": 0.5, "colour": 0.75}})
    assert sorted(path.name for path in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = (folder / "README.md").read_text()
    assert "shapes" in card and "| text to video: colour | 75% |" in card and "TinySora.from_pretrained" in card
    again = TinySora.from_pretrained(folder, device="cpu")
    assert again.config == sora.config and again.data_shape == sora.data_shape
    assert again.tokenizer.words == sora.tokenizer.words
    for (name, tensor), (other, same) in zip(sora.denoiser.state_dict().items(), again.denoiser.state_dict().items()):
        assert name == other and torch.equal(tensor, same), name
    first = sora.text_to_video(PROMPT, steps=2, seed=1).tensor
    assert torch.equal(first, again.text_to_video(PROMPT, steps=2, seed=1).tensor)


def test_a_folder_missing_a_file_or_of_another_version_is_a_clear_error(untrained_toy, tmp_path):
    folder = TinySora.from_pretrained(untrained_toy / "model.pt", device="cpu").save_pretrained(tmp_path / "shared")
    (folder / "model.safetensors").rename(tmp_path / "elsewhere.safetensors")
    with pytest.raises(FileNotFoundError, match="lacks model.safetensors"):
        TinySora.from_pretrained(folder)
    (tmp_path / "elsewhere.safetensors").rename(folder / "model.safetensors")
    description = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**description, "format_version": 99}))
    with pytest.raises(ValueError, match="format version 99"):
        TinySora.from_pretrained(folder)
    with pytest.raises(ValueError, match="not a text-to-video model"):
        torch.save({"something": 1}, tmp_path / "other.pt")
        TinySora.from_pretrained(tmp_path / "other.pt")


def test_images_come_as_tensors_pil_images_or_files_alike(untrained_toy):
    sora = TinySora.from_pretrained(untrained_toy / "model.pt", device="cpu")
    frame = load_model(untrained_toy / "model.pt")  # a second load, to show nothing is shared between the two
    assert frame[2] == sora.data_shape
    from minisora.data.video_io import read_image, to_frames

    image = read_image(untrained_toy / "first.png")  # (3, 1, 32, 32)
    pil = Image.fromarray(to_frames(image)[0])
    made = [sora.image_to_video(source, PROMPT, steps=2).tensor for source in (image, image[:, 0], pil,
                                                                                untrained_toy / "first.png")]
    for other in made[1:]:
        assert torch.equal(made[0], other)
    assert torch.equal(made[0][0, :, 0], image[:, 0])  # the given frame comes back as given


@pytest.mark.parametrize("call, message", [
    (lambda sora: sora.text_to_video(PROMPT, num=0), "num and steps must be at least 1"),
    (lambda sora: sora.text_to_video(PROMPT, guidance=float("nan")), "guidance must be a finite number"),
    (lambda sora: sora.text_to_video(PROMPT, sampler="rk45"), "unknown sampler 'rk45'"),
    (lambda sora: sora.text_to_video(PROMPT, size=(30, 32)), "30"),
    (lambda sora: sora.text_to_video(17), "prompt must be a caption"),
    (lambda sora: sora.image_to_video(torch.zeros(3, 2, 32, 32), PROMPT), r"\(3, H, W\) or \(3, 1, H, W\)"),
    (lambda sora: sora.extend(torch.zeros(3, 32, 32), PROMPT), r"a video must be a tensor \(3, T, H, W\)"),
    (lambda sora: sora.interpolate(torch.zeros(3, 32, 32), torch.zeros(3, 32, 48), PROMPT), "one size"),
    (lambda sora: sora.loop(PROMPT, frames=8), "up to 7 frames"),
    (lambda sora: sora.edit(torch.zeros(3, 8, 32, 32), PROMPT, strength=0), r"strength must be in \(0, 1\]"),
])
def test_bad_input_is_a_clear_error_before_any_sampling(untrained_toy, call, message):
    sora = TinySora.from_pretrained(untrained_toy / "model.pt", device="cpu")
    with pytest.raises(ValueError, match=message):
        call(sora)


def test_saving_refuses_to_replace_samples_unless_asked(untrained_toy, tmp_path):
    videos = TinySora.from_pretrained(untrained_toy / "model.pt", device="cpu").text_to_video(PROMPT, steps=2)
    videos.save(tmp_path)
    with pytest.raises(ValueError, match="already holds samples"):
        videos.save(tmp_path)
    videos.save(tmp_path, overwrite=True)
    assert "adherence" in videos.scores()


def test_sampling_scoring_and_the_demo_import_no_trainer():
    """Imports run one way: the pipeline, the sample command's code, the scores and the demo load nothing of
    minisora.train (the model's files are read by trained_model.py, its configuration is video_config.py)."""
    modules = "minisora.pipeline, minisora.trained_model, minisora.generate, minisora.scoring, minisora.demo"
    loaded = subprocess.run([sys.executable, "-c", f"import sys, {modules}; print(' '.join(sys.modules))"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert "minisora.pipeline" in loaded and "minisora.demo" in loaded
    assert [name for name in loaded if name == "minisora.train" or name.startswith("minisora.train.")] == []
    assert "minisora.evaluation" not in loaded  # the trainer's scoring of a run, not the pipeline's


class FakeHub:
    """huggingface_hub's calls that minisora.hub makes, answered from a local folder: no network."""

    def __init__(self, root: Path):
        self.root, self.calls = root, []

    def snapshot_download(self, repo_id, revision=None, token=None, allow_patterns=None):
        self.calls.append(("download", repo_id, revision, tuple(allow_patterns)))
        folder = self.root / repo_id
        if not folder.is_dir():
            raise FileNotFoundError(f"404 Client Error: Repository Not Found for url: .../{repo_id}")
        return str(folder)

    def HfApi(self, token=None):
        hub = self

        class Api:
            def create_repo(self, repo_id, private=None, exist_ok=False):
                hub.calls.append(("create", repo_id, private, exist_ok))

            def upload_folder(self, repo_id, folder_path, commit_message, allow_patterns):
                hub.calls.append(("upload", repo_id, commit_message, tuple(allow_patterns)))
                target = hub.root / repo_id
                target.mkdir(parents=True, exist_ok=True)
                for path in Path(folder_path).iterdir():
                    (target / path.name).write_bytes(path.read_bytes())
                return type("Commit", (), {"commit_url": f"https://hub.example/{repo_id}/commit/1"})()

        return Api()


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub", reason="the hub extra (huggingface_hub) is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # should anything slip past the fakes, it fails instead of downloading
    hub = FakeHub(tmp_path / "hub")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    monkeypatch.setattr(huggingface_hub, "HfApi", hub.HfApi)
    return hub


def test_a_model_pushed_to_the_hub_comes_back_the_same(untrained_toy, fake_hub):
    sora = TinySora.from_pretrained(untrained_toy / "model.pt", device="cpu")
    address = sora.push_to_hub("someone/tiny-sora", private=True)
    assert address == "https://hub.example/someone/tiny-sora/commit/1"
    assert [call[0] for call in fake_hub.calls] == ["create", "upload"]
    assert fake_hub.calls[0] == ("create", "someone/tiny-sora", True, True)
    assert sorted(fake_hub.calls[1][3]) == ["README.md", "config.json", "model.safetensors"]
    again = TinySora.from_pretrained("someone/tiny-sora", device="cpu", revision="main")
    assert fake_hub.calls[-1][:3] == ("download", "someone/tiny-sora", "main")
    assert torch.equal(sora.text_to_video(PROMPT, steps=2, seed=3).tensor,
                       again.text_to_video(PROMPT, steps=2, seed=3).tensor)


def test_a_repo_the_hub_cannot_give_is_a_clear_error(fake_hub, tmp_path, monkeypatch):
    with pytest.raises(OSError, match="nobody/missing is no file or folder here.*Repository Not Found"):
        TinySora.from_pretrained("nobody/missing", device="cpu")
    monkeypatch.chdir(tmp_path)  # a relative path that is no folder here and not owner/name is not sent to the Hub
    with pytest.raises(OSError, match="runs/sora/model.pt"):
        TinySora.from_pretrained("runs/sora/model.pt", device="cpu")
    assert [call for call in fake_hub.calls if call[0] == "download"] == [("download", "nobody/missing", None,
                                                                           ("config.json", "model.safetensors",
                                                                            "README.md"))]
