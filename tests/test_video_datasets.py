"""The tiny video datasets: deterministic, drawing what their ground truth says, and moving by their physics."""
import json
import math

import pytest
import torch

from tiny_datasets.videos import (DIRECTIONS, GRAVITY, SPEEDS, VIDEO_DATASETS, BouncingBall, MovingDigits,
                                  ball_under_gravity, straight_line_with_bounces, video_dataset)


@pytest.mark.parametrize("name", list(VIDEO_DATASETS))
def test_clips_are_deterministic_by_seed_and_follow_the_video_convention(name):
    first, again, other = (video_dataset(name, num_items=6, image_size=32, seed=seed) for seed in (1, 1, 2))
    item = first[4]
    assert item["video"].shape == (3, 17, 32, 32) and item["video"].dtype == torch.float32
    assert item["video"].min() >= -1 and item["video"].max() <= 1
    assert torch.equal(item["video"], again[4]["video"]) and item["caption"] == again[4]["caption"]
    assert any(not torch.equal(first[i]["video"], other[i]["video"]) for i in range(6))
    assert not torch.equal(item["video"][:, 0], item["video"][:, -1]), "the objects should move"
    json.dumps([track.as_dict() for track in item["truth"]])  # the truth is JSON-ready for the captions index


@pytest.mark.parametrize("name, tolerance_pixels", [("shapes", 1.0), ("ball", 1.0), ("digits", 2.0)])
def test_the_ground_truth_positions_are_where_the_pixels_are(name, tolerance_pixels):
    """The middle of each frame's drawn object (its bounding box) is the truth's centre, within a pixel at 64x64
    (two for digits, whose font anchor is the middle of the text line rather than of the glyph's ink)."""
    dataset = video_dataset(name, num_items=8, image_size=64)
    for index in range(8):
        item = dataset[index]
        video, track = item["video"], item["truth"][0]
        for frame in range(video.shape[1]):
            drawn = (video[:, frame] - video[:, frame, :1, :1]).abs().sum(0) > 0.3  # differs from the background
            rows, columns = torch.nonzero(drawn, as_tuple=True)
            centre = ((columns.min() + columns.max() + 1) / 128, (rows.min() + rows.max() + 1) / 128)
            for measured, true in zip(centre, track.positions[frame]):
                assert abs(float(measured) - true) * 64 <= tolerance_pixels, (index, frame)


@pytest.mark.parametrize("name, tolerance_pixels", [("shapes", 1.0), ("ball", 1.0), ("digits", 2.0)])
@pytest.mark.parametrize("height, width", [(32, 64), (64, 32)])
def test_any_height_and_width_draws_where_the_truth_says(name, tolerance_pixels, height, width):
    """A wide or tall frame is a bigger box for the same objects: the truth's fractions of the width and height are
    where the pixels are, an object's pixel size is that of the square world of the shorter side, and the objects
    use the whole box (some centres beyond the square's)."""
    dataset = video_dataset(name, num_items=12, height=height, width=width, num_frames=24)
    square = video_dataset(name, num_items=1, image_size=min(height, width))
    beyond_square = 0
    for index in range(12):
        item = dataset[index]
        video, track = item["video"], item["truth"][0]
        assert video.shape == (3, 24, height, width)
        for frame in range(video.shape[1]):
            drawn = (video[:, frame] - video[:, frame, :1, :1]).abs().sum(0) > 0.3
            rows, columns = torch.nonzero(drawn, as_tuple=True)
            x, y = (columns.min() + columns.max() + 1) / 2, (rows.min() + rows.max() + 1) / 2
            true_x, true_y = track.positions[frame]
            assert abs(float(x) - true_x * width) <= tolerance_pixels and abs(float(y) - true_y * height) <= \
                tolerance_pixels, (index, frame)
            beyond_square += max(true_x * width, true_y * height) > min(height, width)
        if name == "ball":  # the same ball, drawn the same number of pixels wide
            assert drawn.sum() == pytest.approx(float(((square[0]["video"][:, 0] - square[0]["video"][:, 0, :1, :1]
                                                        ).abs().sum(0) > 0.3).sum()), rel=0.2)
    assert beyond_square > 0


@pytest.mark.parametrize("name", list(VIDEO_DATASETS))
def test_a_clip_seen_over_later_or_more_frames_is_the_same_motion(name):
    """The world knows every clip's past and future: clip(i, n, start) is frames start .. start + n - 1 of the
    same motion, so an extension (forward or backward) or an interpolation has one true answer."""
    dataset = video_dataset(name, num_items=4, image_size=32, num_frames=16)
    for index in range(4):
        clip = dataset[index]
        longer = dataset.clip(index, num_frames=48)
        later = dataset.clip(index, num_frames=16, start_frame=24)
        assert longer["caption"] == clip["caption"] == later["caption"]
        assert torch.equal(longer["video"][:, :16], clip["video"])
        assert torch.equal(longer["video"][:, 24:40], later["video"])
        assert longer["truth"][0].positions[:16] == clip["truth"][0].positions
        assert longer["truth"][0].positions[24:40] == later["truth"][0].positions
    with pytest.raises(ValueError, match="num_frames >= 1"):
        dataset.clip(0, num_frames=0)


@pytest.mark.parametrize("name", ["shapes", "digits"])
def test_objects_move_the_way_the_caption_says_and_stay_inside(name):
    dataset = video_dataset(name, num_items=30, image_size=32)
    for index in range(30):
        item = dataset[index]
        for track in item["truth"]:
            assert f"moving {track.direction} {track.speed}" in item["caption"]
            (x0, y0), (x1, y1) = track.positions[:2]
            expected = [SPEEDS[track.speed] * component for component in DIRECTIONS[track.direction]]
            assert x1 - x0 == pytest.approx(expected[0], abs=1e-9) and y1 - y0 == pytest.approx(expected[1], abs=1e-9)
            half = track.extent / 2
            assert all(half - 1e-9 <= coordinate <= 1 - half + 1e-9 for position in track.positions
                       for coordinate in position)


def test_a_bounce_reflects_the_motion_and_keeps_the_speed():
    positions = straight_line_with_bounces((0.8, 0.5), (0.06, 0.0), half_extent=0.15, num_frames=4)
    # 0.80 -> 0.85 (the wall) -> back: 0.84, then 0.78, 0.72
    assert [round(x, 9) for x, _ in positions] == [0.8, 0.84, 0.78, 0.72]


def test_the_ball_falls_as_the_closed_form_says_until_it_bounces():
    """Free fall from rest: y(t) = y0 + g t^2 / 2 exactly (second differences equal g); x moves uniformly."""
    positions = ball_under_gravity((0.3, 0.1), (0.01, 0.0), radius=0.1, num_frames=12)
    fall_frames = math.sqrt(2 * (0.9 - 0.1) / GRAVITY)
    for t, (x, y) in enumerate(positions):
        assert x == pytest.approx(0.3 + 0.01 * t, abs=1e-12)
        if t <= fall_frames:
            assert y == pytest.approx(0.1 + GRAVITY * t**2 / 2, abs=1e-12)


@pytest.mark.parametrize("restitution", [1.0, 0.7])
def test_the_bounce_loses_exactly_the_restitution(restitution):
    """After hitting the floor at speed v = g t_f, the ball rises from it at restitution * v:
    y(t) = floor - e v (t - t_f) + g (t - t_f)^2 / 2 until it lands again."""
    g, floor, y0 = 0.01, 0.9, 0.2
    positions = ball_under_gravity((0.5, y0), (0.0, 0.0), radius=0.1, num_frames=60, gravity=g,
                                   restitution=restitution)
    fall = math.sqrt(2 * (floor - y0) / g)
    impact_speed = g * fall
    checked = 0
    for t, (_, y) in enumerate(positions):
        after = t - fall
        if 0 < after < 2 * restitution * impact_speed / g:
            assert y == pytest.approx(floor - restitution * impact_speed * after + g * after**2 / 2, abs=1e-12)
            checked += 1
    assert checked > 10
    peak = min(y for t, (_, y) in enumerate(positions) if t > fall)
    assert floor - peak == pytest.approx(restitution**2 * (floor - y0), rel=0.05)  # the peak (sampled at frames)


def test_the_ball_comes_to_rest_instead_of_bouncing_forever():
    positions = ball_under_gravity((0.5, 0.5), (0.0, 0.0), radius=0.1, num_frames=400, restitution=0.5)
    assert positions[-1][1] == 0.9 and positions[-2][1] == 0.9


def test_two_digit_clips_caption_both_digits():
    item = MovingDigits(num_items=3, image_size=32, num_digits=2)[0]
    first, second = item["truth"]
    assert item["caption"] == (f"a {first.name} moving {first.direction} {first.speed} and "
                               f"a {second.name} moving {second.direction} {second.speed}")


@pytest.mark.parametrize("bad, message", [
    (dict(image_size=8), "8x8 is too small"),
    (dict(height=32, width=12), "32x12 is too small"),
    (dict(num_frames=0), "num_frames"),
])
def test_bad_dataset_options_are_clear_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        BouncingBall(**bad)
    with pytest.raises(ValueError, match="unknown video dataset 'cats'"):
        video_dataset("cats")
