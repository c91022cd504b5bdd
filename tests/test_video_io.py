"""Video files in and out, and datasets over folders of them, bad files included."""
import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from minisora.data.folder import VideoFolderDataset, frame_indices, resize_and_crop, write_video_dataset
from minisora.data.video_io import (VideoReadError, from_frames, probe_video, psnr, read_video, show_video,
                                    tile_videos, to_frames, write_frame_grid, write_gif, write_video)
from tiny_datasets.videos import MovingDigits, MovingShapes

ROOT = Path(__file__).resolve().parents[1]


def gradient_video(frames=9, height=32, width=48):
    """A smooth moving colour gradient: easy for a codec."""
    t, y, x = torch.meshgrid(torch.arange(frames), torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([torch.sin((x + 2 * t) / 9), torch.cos((y - t) / 7), torch.sin((x + y) / 13)]) * 0.8


# the floors: x264 at quality 12 loses little, but yuv420p keeps colour at half resolution, which costs sharp
# coloured edges on 32x32 frames most (grey digits have no colour to lose)
@pytest.mark.parametrize("name, video, floor_db", [
    ("smooth gradient", gradient_video(), 34.0),
    ("white digits 32x32", MovingDigits(2, 32)[0]["video"], 38.0),
    ("coloured shapes 64x64", MovingShapes(2, 64)[0]["video"], 30.0),
    ("coloured shapes 32x32", MovingShapes(2, 32)[1]["video"], 26.0),
])
def test_mp4_round_trip_keeps_the_video(tmp_path, name, video, floor_db):
    path = write_video(tmp_path / "clip.mp4", video, fps=8)
    back = read_video(path)
    assert back.shape == video.shape
    assert psnr(video, back) >= floor_db, name


def test_lower_quality_numbers_keep_more(tmp_path):
    video = MovingShapes(2, 32)[0]["video"]
    fine, coarse = (psnr(video, read_video(write_video(tmp_path / f"{q}.mp4", video, quality=q))) for q in (0, 40))
    assert fine > coarse + 3


def test_probe_reads_the_header_and_indices_pick_frames(tmp_path):
    video = gradient_video(frames=12)
    path = write_video(tmp_path / "clip.mp4", video, fps=6)
    info = probe_video(path)
    assert (info.frames, info.fps, info.height, info.width) == (12, 6.0, 32, 48)
    everything = read_video(path)
    assert torch.equal(read_video(path, [1, 5, 9]), everything[:, [1, 5, 9]])
    assert torch.equal(read_video(path, [3, 3, 0]), everything[:, [3, 3, 0]])  # in the order asked, repeats kept
    assert torch.equal(read_video(path, iter([2, 7])), everything[:, [2, 7]])  # an iterator is read once
    with pytest.raises(VideoReadError, match="only 12 frames"):
        read_video(path, [0, 12])


def test_odd_sizes_are_refused_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match="even height and width, got 31x32"):
        write_video(tmp_path / "odd.mp4", torch.zeros(3, 2, 31, 32))
    with pytest.raises(ValueError, match=r"\(3, T, H, W\)"):
        write_video(tmp_path / "batch.mp4", torch.zeros(1, 3, 2, 32, 32))


def test_frames_and_videos_convert_both_ways_exactly():
    frames = np.random.default_rng(0).integers(0, 256, size=(3, 4, 6, 3), dtype=np.uint8)
    assert np.array_equal(to_frames(from_frames(frames)), frames)


def test_pillow_gifs_keep_every_frame_exactly(tmp_path):
    video = MovingShapes(2, 32)[0]["video"]
    image = Image.open(write_gif(tmp_path / "clip.gif", video, fps=10))
    frames = []
    for number in range(image.n_frames):
        image.seek(number)
        frames.append(np.array(image.convert("RGB")))
    assert np.array_equal(np.stack(frames), to_frames(video))
    assert image.info["duration"] == 100 and len(frames) == video.shape[1]


def test_tiles_grids_and_inline_display():
    videos = torch.rand(5, 3, 4, 8, 6) * 2 - 1
    tiled = tile_videos(videos, columns=3, gap=1)
    assert tiled.shape == (3, 4, 2 * 9 - 1, 3 * 7 - 1)
    assert torch.equal(tiled[:, :, 9:17, 7:13], videos[4])  # row 1, column 1
    html = show_video(videos[:2], captions=["one", "two"]).data
    assert html.count("data:image/gif;base64,") == 2 and "two" in html
    with pytest.raises(ValueError, match="3 captions for 2 videos"):
        show_video(videos[:2], captions=["a", "b", "c"])


def test_frame_grid_has_a_row_per_video_and_a_column_per_frame(tmp_path):
    image = Image.open(write_frame_grid(tmp_path / "grid.png", torch.zeros(2, 3, 5, 8, 8), scale=2))
    assert image.size == ((5 * 9 - 1) * 2, (2 * 9 - 1) * 2)


def test_frame_indices_stride_and_resampled_rate():
    assert frame_indices(2, 4, 2) == [2, 4, 6, 8]
    assert frame_indices(0, 4, 30 / 12) == [0, 2, 5, 8]  # 30 fps read at 12 fps: round(k * 2.5), half to even


def test_resize_and_crop_covers_then_crops_the_centre():
    video = torch.rand(3, 2, 32, 40) * 2 - 1
    assert torch.equal(resize_and_crop(video, (32, 32)), video[:, :, :, 4:36])  # no scaling needed: a centre crop
    larger = resize_and_crop(video, (64, 64))  # scaled by 2 to 64x80, then cropped
    assert larger.shape == (3, 2, 64, 64) and larger.min() >= -1 and larger.max() <= 1
    constant = torch.full((3, 2, 48, 64), 0.25)
    assert torch.allclose(resize_and_crop(constant, (16, 16)), torch.full((3, 2, 16, 16), 0.25))
    random_crops = {tuple(resize_and_crop(torch.arange(40.).expand(3, 1, 8, 40), (8, 8),
                                          torch.Generator().manual_seed(seed))[0, 0, 0, :1].tolist())
                    for seed in range(20)}
    assert len(random_crops) > 5


@pytest.fixture
def written_dataset(tmp_path):
    dataset = MovingShapes(num_items=5, image_size=32, num_frames=9, seed=3)
    return dataset, write_video_dataset(dataset, tmp_path / "shapes", fps=8, progress=False)


def test_a_written_dataset_reads_back_with_its_captions_and_truth(written_dataset):
    dataset, folder = written_dataset
    records = [json.loads(line) for line in (folder / "captions.jsonl").read_text().splitlines()]
    assert [record["caption"] for record in records] == [dataset[i]["caption"] for i in range(5)]
    assert records[2]["truth"][0]["positions"][0] == pytest.approx(list(dataset[2]["truth"][0].positions[0]), abs=1e-5)
    folder_dataset = VideoFolderDataset(folder, num_frames=9, size=32)
    assert len(folder_dataset) == 5 and not folder_dataset.skipped
    item = folder_dataset[2]
    assert item["caption"] == dataset[2]["caption"] and item["path"] == "00002.mp4"
    assert psnr(dataset[2]["video"], item["video"]) > 25


def test_stride_fps_and_random_starts(written_dataset):
    _, folder = written_dataset
    full = read_video(folder / "00000.mp4")
    strided = VideoFolderDataset(folder, num_frames=4, stride=2, size=32)[0]["video"]
    assert torch.equal(strided, full[:, [0, 2, 4, 6]])
    assert torch.equal(VideoFolderDataset(folder, num_frames=4, fps=4, size=32)[0]["video"], strided)  # 8 fps -> 4
    random = VideoFolderDataset(folder, num_frames=3, size=32, random_start=True, seed=1)
    starts = set()
    for epoch in range(6):
        random.set_epoch(epoch)
        clip = random[0]["video"]
        starts.add(next(s for s in range(7) if torch.equal(clip, full[:, s:s + 3])))
    assert len(starts) > 1
    random.set_epoch(0)
    again = VideoFolderDataset(folder, num_frames=3, size=32, random_start=True, seed=1)
    assert torch.equal(random[0]["video"], again[0]["video"])


def make_bad_files(folder: Path, good: Path):
    """One file of every kind that cannot be used, beside good ones; returns {name: what the error should say}."""
    (folder / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("this is not a video\n")
    with av.open(str(folder / "audio_only.mp4"), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in list(stream.encode(frame)) + list(stream.encode(None)):
            container.mux(packet)
    write_video(folder / "short.mp4", gradient_video(frames=3))
    half = good.read_bytes()
    (folder / "truncated.mp4").write_bytes(half[: len(half) // 2])
    return {"garbage.mp4": "not a readable video", "empty.mp4": "empty", "text.mp4": "not a readable video",
            "audio_only.mp4": "no video stream", "short.mp4": "3 frames, fewer than the 9",
            "truncated.mp4": "not a readable video|fewer than", "missing.mp4": "no such file"}


def test_every_kind_of_bad_file_is_skipped_and_counted(written_dataset):
    _, folder = written_dataset
    expected = make_bad_files(folder, folder / "00000.mp4")
    index = folder / "captions.jsonl"
    index.write_text(index.read_text() + "".join(json.dumps({"video": name, "caption": "bad"}) + "\n"
                                                 for name in expected))
    with pytest.warns(UserWarning, match="7 of 12 files .* cannot be used"):
        dataset = VideoFolderDataset(folder, num_frames=9, size=32, on_bad_file="skip")
    assert len(dataset) == 5
    reasons = dict(dataset.skipped)
    assert set(reasons) == set(expected)
    for name, message in expected.items():
        assert name in reasons[name]
        assert any(part in reasons[name] for part in message.split("|")), reasons[name]
    assert all(dataset[i]["caption"] != "bad" for i in range(len(dataset)))


def test_bad_files_are_one_clear_error_when_asked(written_dataset):
    _, folder = written_dataset
    (folder / "captions.jsonl").unlink()  # now every video in the folder is used, uncaptioned
    (folder / "broken.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(VideoReadError, match=r"1 of 6 files(.|\n)*broken.mp4(.|\n)*on_bad_file='skip'"):
        VideoFolderDataset(folder, num_frames=9, size=32, on_bad_file="error")


def test_a_file_that_breaks_after_the_scan_is_skipped_or_raised(written_dataset):
    _, folder = written_dataset
    skipping = VideoFolderDataset(folder, num_frames=9, size=32, on_bad_file="skip")
    strict = VideoFolderDataset(folder, num_frames=9, size=32, on_bad_file="error")
    (folder / "00001.mp4").write_bytes(b"broken since")
    with pytest.warns(UserWarning, match="00001.mp4"):
        item = skipping[1]
    assert item["path"] == "00002.mp4" and [path for path, _ in skipping.skipped] == ["00001.mp4"]
    with pytest.raises(VideoReadError, match="00001.mp4"):
        strict[1]


def test_captions_from_csv_or_sidecar_files(tmp_path):
    for name in ("a", "b"):
        write_video(tmp_path / "csv" / f"{name}.mp4", gradient_video(frames=4))
        write_video(tmp_path / "txt" / f"{name}.mp4", gradient_video(frames=4))
        (tmp_path / "txt" / f"{name}.txt").write_text(f"clip {name}\n")
    (tmp_path / "csv" / "captions.csv").write_text('path,text\na.mp4,"first, with a comma"\nb.mp4,second\n')
    from_csv = VideoFolderDataset(tmp_path / "csv", num_frames=4, size=16)
    assert [from_csv[i]["caption"] for i in range(2)] == ["first, with a comma", "second"]
    assert from_csv[0]["video"].shape == (3, 4, 16, 16)
    from_sidecars = VideoFolderDataset(tmp_path / "txt", num_frames=4, size=16)
    assert [from_sidecars[i]["caption"] for i in range(2)] == ["clip a", "clip b"]


@pytest.mark.parametrize("options, message", [
    (dict(on_bad_file="ignore"), "on_bad_file must be one of"),
    (dict(stride=0), "stride >= 1"),
])
def test_bad_dataset_options_are_clear_errors(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        VideoFolderDataset(tmp_path, **options)
    with pytest.raises(FileNotFoundError, match="python -m minisora data"):
        VideoFolderDataset(tmp_path / "nowhere")
    with pytest.raises(VideoReadError, match="no usable videos"):
        VideoFolderDataset(tmp_path)


def test_data_command_writes_a_dataset_the_folder_reader_reads(tmp_path):
    result = subprocess.run([sys.executable, "-m", "minisora", "data", "--dataset=ball", "--num_items=3",
                             "--num_frames=5", f"--out_dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    dataset = VideoFolderDataset(tmp_path, num_frames=5, size=32)
    assert len(dataset) == 3 and dataset[0]["caption"].startswith("a ") and "ball bouncing" in dataset[0]["caption"]
