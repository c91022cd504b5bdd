"""Prompting a trained model from the command line: any length and size, images, image-to-video, extension both
ways, loops, SDEdit, long videos chunk by chunk; given frames come back unchanged; bad combinations are clear
errors. The model is a toy run (seconds of training): these tests check the plumbing, the benchmarks the quality."""
import pytest
import torch

from minisora.__main__ import main
from minisora.data.video_io import psnr, read_image, read_video, write_image, write_video
from minisora.generate import Prompting, chunk_starts, edit_sigma, parse_size, sample_latents, sample_long
from minisora.trained_model import load_model
from minisora.train.video import run_video
from minisora.video_config import VideoConfig
from tiny_datasets.videos import video_dataset

TOY = dict(num_frames=8, hidden=32, depth=1, heads=2, text_hidden=16, text_depth=1, num_clips=64, held_out=8,
           batch_size=4, sampling_steps=2, checkpoint_every=4, steps=4, expert_steps=0,
           frame_marking="mask_channel", task_mix="text:1,first:1,head:1,tail:1,first_last:1",
           buckets="8x32x32:4,1x32x32:16,4x32x48:4", unseen_sizes="12x48x32")
PROMPT = "a large red square moving right slowly"


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy")
    metrics = run_video(VideoConfig(out_dir=str(out), **TOY), progress=False)
    # every task and size is scored (a toy this small scores near 0: the plumbing is what is checked here)
    assert set(metrics["sizes"]) == {"1x32x32 (trained)", "4x32x48 (trained)", "12x48x32 (never trained on)"}
    assert set(metrics["tasks"]["trained"]) == {"image_to_video", "extend_forward", "extend_backward", "interpolate"}
    assert metrics["tasks"]["real clips"]["extend_forward"]["track_error_px"] < 1
    clip = video_dataset("shapes", num_items=1, image_size=32, num_frames=8, seed=3)[0]["video"]
    write_video(out / "clip.mp4", clip)
    write_image(out / "first.png", clip[:, :1])
    write_image(out / "wide.png", torch.zeros(3, 1, 32, 48))
    write_video(out / "short.mp4", clip[:, :2])
    return out


def sample(model_dir, out, *flags):
    return main(["sample", "--checkpoint", str(model_dir / "model.pt"), "--prompt", PROMPT, "--steps", "2",
                 "--num", "2", "--out", str(out), *flags])


def test_one_frame_makes_images_and_other_sizes_and_long_videos_come_out_whole(toy_model, tmp_path):
    assert sample(toy_model, tmp_path / "images", "--frames", "1") == 0
    assert sorted(path.name for path in (tmp_path / "images").glob("??.png")) == ["00.png", "01.png"]
    assert read_image(tmp_path / "images" / "00.png").shape == (3, 1, 32, 32)
    assert sample(toy_model, tmp_path / "wide", "--frames", "6", "--size", "32x48") == 0
    assert read_video(tmp_path / "wide" / "01.mp4").shape == (3, 6, 32, 48)
    assert sample(toy_model, tmp_path / "long", "--frames", "20") == 0  # 2.5 windows of the model's 8 frames
    assert read_video(tmp_path / "long" / "00.mp4").shape == (3, 20, 32, 32)


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal within what H.264 in yuv420p keeps of 32x32 coloured shapes (tests/test_video_io.py: 26 dB)."""
    return psnr(a, b) > 26


def test_given_frames_come_back_in_the_output(toy_model, tmp_path):
    clip = read_video(toy_model / "clip.mp4")  # (3, 8, 32, 32)
    first = read_image(toy_model / "first.png")
    assert sample(toy_model, tmp_path / "i2v", "--first-frame", str(toy_model / "first.png")) == 0
    made = read_video(tmp_path / "i2v" / "00.mp4")
    assert made.shape == (3, 8, 32, 32) and close(made[:, :1], first)
    assert sample(toy_model, tmp_path / "forward", "--extend", str(toy_model / "clip.mp4")) == 0
    made = read_video(tmp_path / "forward" / "01.mp4")
    assert made.shape == (3, 12, 32, 32) and close(made[:, :8], clip)  # the clip, then half a window more
    assert sample(toy_model, tmp_path / "backward", "--extend-backward", str(toy_model / "clip.mp4"),
                  "--frames", "14") == 0
    made = read_video(tmp_path / "backward" / "00.mp4")
    assert made.shape == (3, 14, 32, 32) and close(made[:, 6:], clip)
    assert sample(toy_model, tmp_path / "connect", "--first-frame", str(toy_model / "first.png"), "--last-frame",
                  str(toy_model / "first.png")) == 0
    made = read_video(tmp_path / "connect" / "00.mp4")
    assert close(made[:, :1], first) and close(made[:, -1:], first)
    assert sample(toy_model, tmp_path / "loop", "--loop") == 0
    assert read_video(tmp_path / "loop" / "00.mp4").shape[1] == 7  # and an 8th frame, the first again, left out


@torch.no_grad()
def test_long_videos_keep_their_given_frames_exactly(toy_model):
    config, tokenizer, data_shape, denoiser, _ = load_model(toy_model / "model.pt")
    ids = tokenizer.encode([PROMPT] * 2, config.caption_length)
    clip = read_video(toy_model / "clip.mp4").expand(2, -1, -1, -1, -1)  # (2, 3, 8, 32, 32)
    mask = torch.zeros(2, 20, dtype=torch.bool)
    mask[:, :4] = True
    given = torch.zeros(2, 3, 20, 32, 32)
    given[:, :, :4] = clip[:, :, :4]
    long = sample_long(denoiser, ids, (3, 20, 32, 32), 8, "heun", 2, 4.0, 0, given=given, given_mask=mask)
    assert torch.equal(long[:, :, :4], clip[:, :, :4]) and long.shape == (2, 3, 20, 32, 32)


class GaussianDenoiser(torch.nn.Module):
    """The exact denoiser of data N(0, I): D(x, sigma) = x / (1 + sigma^2)."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives sample_latents a device to read

    def forward(self, x, sigma, caption=None):
        return x / (1 + sigma.view(-1, 1, 1, 1, 1).to(x.dtype) ** 2)


@pytest.mark.parametrize("strength", [0.3, 0.6, 0.9])
@torch.no_grad()
def test_sdedit_lands_where_the_probability_flow_of_its_noised_start_does(strength):
    """SDEdit (Meng et al. 2022) on Gaussian data, where the probability-flow ODE has a closed form: from
    x_S = start + sigma_S n it carries x along x(sigma) = x_S sqrt(1 + sigma^2) / sqrt(1 + sigma_S^2), so the edit
    is (start + sigma_S n) / sqrt(1 + sigma_S^2), sigma_S = S / (1 - S); the higher the strength, the further from
    the start."""
    start = torch.randn(2, 3, 4, 8, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    edited = sample_latents(GaussianDenoiser().double(), torch.zeros(2, 4, dtype=torch.long), (3, 4, 8, 8), "heun",
                            40, 1.0, seed=9, start=start, strength=strength)
    sigma = strength / (1 - strength)
    noise = torch.randn((2, 3, 4, 8, 8), generator=torch.Generator().manual_seed(9)).double()
    expected = (start + sigma * noise) / (1 + sigma**2) ** 0.5
    torch.testing.assert_close(edited.double(), expected, rtol=1e-2, atol=1e-3)  # Heun with 40 steps


@torch.no_grad()
def test_sampling_reports_each_step_and_can_hold_frames_by_replacement_alone():
    """The callback sees every step's state and x_0 estimate; with network_sees_frames=False a network that takes
    no frames (the Gaussian denoiser: a caption only) is prompted with them all the same, and keeps them."""
    reports = []
    given = torch.randn(2, 3, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([[True, False, False, False]] * 2)
    out = sample_latents(GaussianDenoiser(), torch.zeros(2, 4, dtype=torch.long), (3, 4, 8, 8), "euler", 5, 1.0,
                         seed=2, given=given, given_mask=mask, network_sees_frames=False, callback=reports.append)
    assert [report["i"] for report in reports] == list(range(5))
    assert all(torch.equal(report["denoised"][:, :, 0], given[:, :, 0]) for report in reports)
    assert torch.equal(out[:, :, 0], given[:, :, 0])
    torch.testing.assert_close(reports[-1]["x"], out)


def test_chunks_cover_the_video_with_half_a_window_shared():
    assert chunk_starts(8, 8, 4) == [0]
    assert chunk_starts(20, 8, 4) == [0, 4, 8, 12]
    assert chunk_starts(18, 8, 4) == [0, 4, 8, 10]
    assert chunk_starts(18, 8, 4, backward=True) == [10, 6, 2, 0]
    assert parse_size("32x48") == (32, 48) and edit_sigma(0.5) == pytest.approx(1.0)


@pytest.mark.parametrize("flags, message", [
    (["--num", "0"], "--num and --steps must be at least 1"),
    (["--cfg", "-3"], "--cfg must be a finite number >= 0"),
    (["--frames", "0"], "--frames must be at least 1"),
    (["--size", "32by48"], "size '32by48' must be two positive sides"),
    (["--size", "30x30"], "height 30 is not divisible by the patch size 8"),
    (["--edit", "CLIP", "--strength", "0"], "strength must be in \\(0, 1\\]"),
    (["--edit", "CLIP"], "--edit needs --strength"),
    (["--strength", "0.5"], "--strength is for --edit"),
    (["--extend", "CLIP", "--edit", "CLIP", "--strength", "0.5"], "--extend and --edit cannot be combined"),
    (["--first-frame", "WIDE"], "wide.png is 32x48 but the output is 32x32; pass --size 32x48"),
    (["--extend", "SHORT"], "short.mp4 has 2 frames; this model continues from 4"),
    (["--loop", "--frames", "8"], "loops make clips of up to 7 frames"),
    (["--last-frame", "FIRST", "--frames", "9"], "clips that end on a given frame are up to the model's 8 frames"),
    (["--first-frame", "MISSING"], "no image at"),
])
def test_bad_requests_are_clear_errors_before_any_work(toy_model, tmp_path, capsys, flags, message):
    files = {"CLIP": "clip.mp4", "WIDE": "wide.png", "SHORT": "short.mp4", "MISSING": "missing.png",
             "FIRST": "first.png"}
    flags = [str(toy_model / files[flag]) if flag in files else flag for flag in flags]
    with pytest.raises(SystemExit) as exit_code:
        sample(toy_model, tmp_path, *flags)
    assert exit_code.value.code == 2
    assert len(__import__("re").findall(message, capsys.readouterr().err)) == 1, message
    assert not list(tmp_path.glob("*.mp4"))


def test_prompting_checks_need_no_model():
    with pytest.raises(ValueError, match="--loop sets the last frame itself"):
        Prompting(loop=True, last_frame="x.png").check()
    with pytest.raises(ValueError, match="--frames 1 makes images"):
        Prompting(frames=1, loop=True).check()


def test_a_prompt_with_unknown_words_says_what_went_unscored(toy_model, tmp_path, capsys):
    assert main(["sample", "--checkpoint", str(toy_model / "model.pt"), "--prompt", "a large purple blob moving "
                 "right slowly", "--steps", "2", "--num", "1", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "never saw the words ['blob', 'purple']" in printed
    assert "colour and shape not scored (no prompt names one the world knows)" in printed


def test_samples_of_an_earlier_run_are_replaced_only_when_asked(toy_model, tmp_path, capsys):
    """A second run into the same folder would replace the first one's videos (and could replace a clip given to
    --extend from there): an error before any work, unless --overwrite."""
    assert sample(toy_model, tmp_path, "--frames", "1") == 0
    (tmp_path / "captions.txt").write_text("the user's own\n")
    with pytest.raises(SystemExit) as exit_code:
        sample(toy_model, tmp_path, "--frames", "1", "--seed", "9")
    assert exit_code.value.code == 2
    assert "already holds samples (00.png, 01.png, samples.gif" in capsys.readouterr().err
    assert (tmp_path / "captions.txt").read_text() == "the user's own\n"
    assert sample(toy_model, tmp_path, "--frames", "1", "--seed", "9", "--overwrite") == 0
    assert (tmp_path / "captions.txt").read_text() == f"{PROMPT}\n{PROMPT}\n"
