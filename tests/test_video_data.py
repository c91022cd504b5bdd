"""Training on a folder of one's own videos: clips bucketed by their size and length, bad files skipped and
counted, held-out loss reported; a folder written from a tiny world trains and scores as the world does."""
import json

import torch

from minisora.__main__ import main
from minisora.data.video_io import write_gif, write_video
from minisora.train.video import run_video
from minisora.video_config import VideoConfig
from minisora.train.video_data import FolderData, clip_size
from minisora.scoring import score_videos
from minisora.train.video_data import held_out_clips
from tiny_datasets.videos import video_dataset

TOY = dict(hidden=32, depth=1, heads=2, text_hidden=16, text_depth=1, batch_size=4, sampling_steps=2, steps=30,
           expert_steps=0, checkpoint_every=0, num_frames=8, learning_rate=3e-3, warmup_steps=5)


def test_each_clip_goes_to_the_bucket_of_its_size_and_length():
    config = VideoConfig(num_frames=16, image_size=32, patch_size=8)
    assert clip_size(40, 64, 64, config) == (16, 32, 32)
    assert clip_size(12, 32, 48, config) == (8, 32, 48)  # the longest of 1, 4, 8, 16 it holds
    assert clip_size(1, 90, 60, config) == (1, 48, 32)  # shorter side to 32, cropped to multiples of 8
    assert clip_size(5, 36, 100, config) == (4, 32, 88)


def test_a_folder_of_mixed_sizes_and_lengths_trains_in_buckets_and_skips_bad_files(tmp_path, capsys):
    folder = tmp_path / "mine"
    lines = []
    for index in range(24):
        height, width, frames = [(32, 32, 8), (32, 48, 8), (32, 32, 4)][index % 3]
        item = video_dataset("shapes", num_items=1, height=height, width=width, num_frames=frames, seed=index)[0]
        write_video(folder / f"{index:02d}.mp4", item["video"])
        lines.append({"video": f"{index:02d}.mp4", "caption": item["caption"]})
    still = video_dataset("shapes", num_items=1, num_frames=1, seed=99)[0]
    write_gif(folder / "still.gif", still["video"])
    lines.append({"video": "still.gif", "caption": still["caption"]})
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    lines.append({"video": "broken.mp4", "caption": "a broken file"})
    (folder / "captions.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    config = VideoConfig(data=str(folder), out_dir=str(tmp_path / "run"), **TOY)
    data = FolderData(config, progress=False)
    assert len(data.skipped) == 1 and data.skipped[0][0] == "broken.mp4"
    sizes = {bucket.describe(): bucket for bucket in data.buckets}
    assert set(sizes) == {"8x32x32", "8x32x48", "4x32x32", "1x32x32"}
    assert sizes["4x32x32"].batch_size == 2 * sizes["8x32x32"].batch_size  # half the values, twice the clips
    assert sum(len(clips) for clips in data.held_out.values()) == 2  # every tenth
    assert main(["train", "--preset", "tiny", f"--data={folder}", f"--out_dir={tmp_path / 'run'}",
                 *[f"--{key}={value}" for key, value in TOY.items()]]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["skipped_files"] == 1 and len(metrics["buckets"]) == 4
    assert metrics["held_out_loss"]["trained"] < metrics["held_out_loss"]["untrained"]
    assert "held-out loss" in capsys.readouterr().out


def test_a_folder_written_from_a_tiny_world_reads_and_scores_as_the_world(tmp_path):
    """`python -m minisora data` writes .mp4 files and a captions.jsonl with the truth: read back, the real clips
    score as the in-memory world's do (within what H.264 changes), and a run on the folder scores its samples."""
    folder = tmp_path / "shapes"
    assert main(["data", "--dataset=shapes", "--num_items=40", "--num_frames=8", f"--out_dir={folder}"]) == 0
    config = VideoConfig(data=str(folder), out_dir=str(tmp_path / "run"), held_out=8, **TOY)
    data = FolderData(config, progress=False)
    videos = torch.cat([torch.stack([video for video, _ in clips]) for clips in data.held_out.values()])
    captions = [caption for clips in data.held_out.values() for _, caption in clips]
    world = video_dataset("shapes", num_items=40, num_frames=8, seed=0)
    originals = torch.stack([world[index]["video"] for index in range(9, 40, 10)])
    from_folder, in_memory = score_videos(videos, captions, "shapes"), score_videos(originals, captions, "shapes")
    for name in ("colour", "direction", "motion"):
        assert abs(from_folder[name] - in_memory[name]) <= 0.25, name
    metrics = run_video(config, progress=False)
    assert "trained" in metrics and metrics["real clips"]["colour"] == 1
    assert len(held_out_clips(VideoConfig(num_frames=8, held_out=4))[1]) == 4
