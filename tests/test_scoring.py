"""The ground-truth scorer: real clips of every world score near 1; shuffled frames, recolouring, a vanished or a
second object each fail the score that should catch them; the closed-form bounce equals the world's simulation."""
import numpy as np
import pytest
import torch

from minisora.scoring import (caption_attributes, fold, majority, read_frame, score_given_frames, score_video,
                              score_videos, shape_from_fill, straight_motion_fit)
from tiny_datasets.shapes import SHAPES, Shape, render
from tiny_datasets.videos import bounce_between_walls, video_dataset


@pytest.fixture(scope="module")
def clips():
    return {name: video_dataset(name, num_items=48, image_size=32, num_frames=17, seed=11).tensors()
            for name in ("shapes", "ball", "digits")}


@pytest.mark.parametrize("world", ["shapes", "ball", "digits"])
def test_real_clips_score_near_perfect(clips, world):
    videos, captions = clips[world]
    scores = score_videos(videos, captions, world)
    for name in ("adherence", "direction", "motion", "permanence"):
        assert scores[name] >= 0.95, (name, scores)
    assert scores["motion_error"] < 0.03


def test_shuffled_frames_fail_motion_and_direction(clips):
    videos, captions = clips["shapes"]
    order = torch.randperm(17, generator=torch.Generator().manual_seed(0))
    scores = score_videos(videos[:, :, order], captions, "shapes")
    assert scores["motion"] < 0.1 and scores["direction"] < 0.5 and scores["adherence"] < 0.5
    assert scores["colour"] == 1 and scores["permanence"] == 1  # what shuffling does not touch still scores


def test_the_ball_without_gravity_fails_motion(clips):
    videos, captions = clips["ball"]
    reversed_in_time = videos.flip(2)  # a ball that rises faster and faster: no throw under gravity does that
    assert score_videos(reversed_in_time, captions, "ball")["motion"] < 0.3


def test_a_wrong_colour_fails_colour_only(clips):
    videos, captions = clips["shapes"]
    scores = score_videos(videos[:, [1, 2, 0]], captions, "shapes")  # red -> green-ish and so on
    assert scores["colour"] < 0.1 and scores["adherence"] < 0.1
    assert scores["direction"] == 1 and scores["motion"] == 1


def test_a_vanished_or_a_second_object_fails_permanence(clips):
    videos, captions = clips["shapes"]
    vanished = videos[:4].clone()
    vanished[:, :, 8] = vanished[:, :, 0, :1, :1]  # frame 8 painted with the background (a corner pixel)
    assert all(score_video(video, caption, "shapes")["permanence"] == 0 for video, caption in
               zip(vanished, captions))
    second = videos[:4].clone()
    second[:, :, :, 1:4, 1:4] = 1.0  # a white speck in the corner of every frame
    second[:, :, :, 28:31, 28:31] = 1.0  # and another
    assert all(score_video(video, caption, "shapes")["permanence"] == 0 for video, caption in
               zip(second, captions))


def test_static_shapes_are_read_by_their_fill():
    for shape in SHAPES:
        for size in ("small", "large"):
            frame = render([Shape(shape, "red", size, 0.5, 0.5)], 32)[:, 0]  # (3, H, W)
            reading = read_frame(((frame + 1) * 127.5).permute(1, 2, 0).double().numpy())
            assert shape_from_fill(reading.fill) == shape and reading.colour == "red" and reading.blobs == 1
            assert abs(reading.centre[0] - 0.5) < 0.04 and abs(reading.centre[1] - 0.5) < 0.04


def test_folding_equals_the_worlds_bounces():
    rng = np.random.default_rng(0)
    for _ in range(50):
        low = rng.uniform(0.1, 0.3)
        start, velocity = rng.uniform(low, 1 - low), rng.uniform(-0.2, 0.2)
        position, speed, simulated = start, velocity, [start]
        for _ in range(30):
            position, speed = bounce_between_walls(position, speed, low, 1 - low)
            simulated.append(position)
        folded = fold(start + velocity * np.arange(31), low, 1 - low)
        np.testing.assert_allclose(folded, simulated, atol=1e-9)


def test_a_straight_track_with_bounces_fits_and_a_zigzag_does_not():
    frames = np.arange(17)
    track = np.stack([fold(0.3 + 0.05 * frames, 0.15, 0.85), fold(0.6 - 0.0325 * frames, 0.15, 0.85)], 1)
    assert straight_motion_fit(track, 0.15)[0] < 1e-3
    zigzag = track.copy()
    zigzag[1::2, 0] += 0.1
    assert straight_motion_fit(zigzag, 0.15)[0] > 0.04


def test_captions_are_read_for_what_they_name():
    assert caption_attributes("a small red circle moving up-left slowly", "shapes") == {
        "colour": "red", "shape": "circle", "direction": "up-left"}
    assert caption_attributes("a blue ball bouncing to the left", "ball") == {"colour": "blue", "direction": "left"}
    assert caption_attributes("a 7 moving down quickly", "digits") == {"direction": "down"}
    with pytest.raises(ValueError, match="names no direction"):
        caption_attributes("a red circle", "shapes")
    with pytest.raises(ValueError, match="cannot score dataset 'faces'"):
        caption_attributes("a face moving left", "faces")
    with pytest.raises(ValueError, match=r"takes videos \(N, 3, T, H, W\) and N captions"):
        score_videos(torch.zeros(2, 3, 4, 32, 32), ["a red circle moving left"], "shapes")


def test_a_majority_tie_goes_to_the_value_seen_first():
    # a set's order of strings changes from process to process; a tie must not
    assert majority(["triangle", "circle", "circle", "triangle", None]) == "triangle"
    assert majority(["circle", "triangle", "triangle", "circle"]) == "circle"
    assert majority(["square", "circle", "circle"]) == "circle" and majority([None]) is None


def test_given_frame_scores_read_real_continuations_as_right_and_frozen_or_shifted_ones_as_wrong():
    """Real clips, with their first frames given, follow their truth within a pixel and keep what they are; the
    first frame repeated (a clip that stops, Open-Sora #696's failure) does not move and misses the truth; the real
    clip moved 3 px sideways is read 3 px off."""
    world = video_dataset("shapes", num_items=12, image_size=32, num_frames=16, seed=5)
    items = [world[index] for index in range(12)]
    videos = torch.stack([item["video"] for item in items])
    captions = [item["caption"] for item in items]
    truths = [item["truth"][0].positions for item in items]
    masks = torch.zeros(12, 16, dtype=torch.bool)
    masks[:, :4] = True
    real = score_given_frames(videos, captions, "shapes", truths, masks)
    assert real["track_error_px"] < 1 and real["track_within_2px"] == 1 and real["identity"] > 0.9
    assert real["moving"] == 1
    frozen = score_given_frames(videos[:, :, :1].expand_as(videos), captions, "shapes", truths, masks)
    assert frozen["moving"] == 0 and frozen["track_error_px"] > 3
    shifted = torch.roll(videos, 3, dims=4)
    assert abs(score_given_frames(shifted, captions, "shapes", truths, masks)["track_error_px"] - 3) < 1
    with pytest.raises(ValueError, match="masks"):
        score_given_frames(videos, captions, "shapes", truths, masks[:, :8])


@pytest.mark.parametrize("dataset", ["shapes", "ball"])
def test_real_clips_of_wide_and_tall_frames_score_as_square_ones_do(dataset):
    """The scorer reads any aspect ratio: the world's own clips at 32x48 and 48x32 follow its motion (the fit works
    in units of the shorter side, in the frame's own box) and keep their caption's colour and direction."""
    for height, width in [(32, 48), (48, 32)]:
        world = video_dataset(dataset, num_items=16, height=height, width=width, num_frames=16, seed=2)
        videos, captions = world.tensors()
        scores = score_videos(videos, captions, dataset)
        assert scores["motion"] >= 0.9 and scores["direction"] >= 0.9 and scores["colour"] == 1, (height, width)


def test_images_score_their_colour_and_shape():
    from minisora.scoring import score_images

    world = video_dataset("shapes", num_items=24, image_size=32, num_frames=1, seed=4)
    images, captions = world.tensors()
    real = score_images(images, captions, "shapes")
    assert real["colour"] == 1 and real["shape"] >= 0.85 and real["permanence"] == 1
    recoloured = score_images(images.flip(1), captions, "shapes")  # RGB -> BGR
    assert recoloured["colour"] < 0.5 and recoloured["adherence"] < 0.5
    assert score_images(torch.zeros_like(images) - 1, captions, "shapes")["adherence"] == 0


def test_the_edit_caption_changes_one_attribute_and_object_centres_are_read_in_pixels():
    from minisora.evaluation import object_centres, other_caption

    assert other_caption("a small red circle moving left slowly", "shapes") == \
        "a small green circle moving left slowly"
    assert other_caption("a yellow ball bouncing to the left", "ball") == "a red ball bouncing to the left"
    assert other_caption("a 3 moving up-left quickly", "digits") == "a 3 moving down-right quickly"
    item = video_dataset("shapes", num_items=1, height=32, width=48, num_frames=4, seed=1)[0]
    centres = object_centres(item["video"])
    truth = np.asarray(item["truth"][0].positions) * (48, 32)
    assert np.abs(centres - truth).max() <= 1
    assert object_centres(torch.full((3, 2, 32, 32), -1.0)) is None  # nothing drawn
