"""Size buckets: several lengths, sizes and aspect ratios (images too) in one training run, a batch from one bucket
at a time with its own batch size, drawn by weight, and the time shift scaled to the bucket's size."""
import math

import pytest
import torch

from minisora.data.buckets import Bucket, parse_buckets, pick_bucket, shift_for
from minisora.train import video
from minisora.video_config import VideoConfig
from minisora.train.video_data import training_buckets, training_clips
from tiny_datasets.videos import video_dataset


def test_buckets_are_read_from_text_and_bad_ones_are_clear_errors():
    assert parse_buckets("16x32x32:32, 1x32x32:128:0.5") == [Bucket(16, 32, 32, 32), Bucket(1, 32, 32, 128, 0.5)]
    for bad in ["", "16x32:32", "16x32x32", "16x32x32:0", "16x32x32:8:-1", "16x32x32:8,16x32x32:4", "axbxc:1"]:
        with pytest.raises(ValueError, match="bucket"):
            parse_buckets(bad)
    assert training_buckets(VideoConfig()) == [Bucket(16, 32, 32, 32)]
    with pytest.raises(ValueError, match="latent model trains at one size"):
        VideoConfig(space="latent", buckets="17x32x32:8,1x32x32:64")


def test_the_time_shift_grows_with_the_square_root_of_the_values():
    reference = Bucket(16, 32, 32, 32)
    assert shift_for(Bucket(4, 64, 64, 8), reference, 6.0) == pytest.approx(6.0)  # the same number of values
    assert shift_for(Bucket(16, 32, 64, 16), reference, 6.0) == pytest.approx(6.0 * math.sqrt(2))
    assert shift_for(Bucket(1, 32, 32, 256), reference, 6.0) == pytest.approx(1.5)  # an image: 1/16 of the values
    assert shift_for(Bucket(1, 16, 16, 256), reference, 3.0) == 1.0  # never towards the data


def test_batches_come_one_bucket_at_a_time_by_weight(monkeypatch):
    """Each batch has one bucket's size and batch size; buckets are drawn in proportion to their weights; the
    time shift is the bucket's; an image batch is given no frames (there is nothing to continue)."""
    seen = []

    def recording_loss(denoiser, clips, objective, generator, **arguments):
        seen.append((tuple(clips.shape), arguments["time_shift"], "given_mask" in arguments))
        return torch.zeros(())

    monkeypatch.setattr(video, "objective_loss", recording_loss)
    config = VideoConfig(task_mix="text:1,first:1", frame_marking="mask_channel")
    buckets = [Bucket(8, 32, 32, 4, 3.0), Bucket(1, 32, 32, 16, 1.0)]
    sets = [(bucket, torch.zeros(20, 3, bucket.frames, bucket.height, bucket.width), torch.zeros(20, 12).long())
            for bucket in buckets]
    loss_of_batch = video.batch_loss(config, None, sets, time_shift=4.0)
    generator = torch.Generator().manual_seed(0)
    for _ in range(400):
        loss_of_batch(generator)
    clips = [shape for shape, _, _ in seen if shape[2] == 8]
    images = [(shape, shift, given) for shape, shift, given in seen if shape[2] == 1]
    assert len(clips) + len(images) == 400 and len(clips) / 400 == pytest.approx(0.75, abs=0.06)
    assert all(shape == (4, 3, 8, 32, 32) for shape in clips)
    assert all(shape == (16, 3, 1, 32, 32) and shift == pytest.approx(4.0 / math.sqrt(8)) and not given
               for shape, shift, given in images)
    assert pick_bucket(buckets[:1]) == 0


def test_images_are_captioned_without_motion_and_rendered_at_each_buckets_size():
    still = video_dataset("shapes", num_items=2, num_frames=1)[0]
    assert "moving" not in still["caption"] and still["caption"].startswith("a ")
    assert video_dataset("ball", num_items=1, num_frames=1)[0]["caption"].endswith("ball")
    config = VideoConfig(num_clips=6, held_out=4)
    wide, captions = training_clips(config, [], progress=False, bucket=Bucket(5, 32, 48, 2))
    assert wide.shape == (6, 3, 5, 32, 48) and all("moving" in caption for caption in captions)
