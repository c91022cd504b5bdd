"""The tiny shapes images: deterministic, in range, and drawing what their labels and captions say."""
import math

import pytest
import torch

from tiny_datasets.shapes import COLOURS, NUM_CLASSES, SIZES, Shape, ShapesDataset, render


def test_items_are_deterministic_by_seed_and_index():
    first, again, other = ShapesDataset(10, 32, seed=1), ShapesDataset(10, 32, seed=1), ShapesDataset(10, 32, seed=2)
    assert torch.equal(first[3]["image"], again[3]["image"]) and first[3]["caption"] == again[3]["caption"]
    assert any(not torch.equal(first[i]["image"], other[i]["image"]) for i in range(10))


def test_images_follow_the_video_convention():
    images, labels, captions = ShapesDataset(50, 64).tensors()
    assert images.shape == (50, 3, 1, 64, 64) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1
    assert labels.min() >= 0 and labels.max() < NUM_CLASSES and len(set(labels.tolist())) > 6
    assert all(caption.startswith("a ") for caption in captions)


@pytest.mark.parametrize("colour", list(COLOURS))
def test_the_centre_pixel_has_the_captions_colour(colour):
    image = render([Shape("square", colour, "large", 0.5, 0.5)], 32)
    centre = ((image[:, 0, 16, 16] + 1) * 127.5).round()
    assert torch.allclose(centre, torch.tensor(COLOURS[colour], dtype=torch.float32), atol=1)


@pytest.mark.parametrize("shape, area", [("square", 1.0), ("circle", math.pi / 4), ("triangle", 0.5)])
def test_drawn_area_matches_the_shape(shape, area):
    """Covered fraction of the bounding box: 1 for a square, pi/4 for a circle, 1/2 for the triangle."""
    image = render([Shape(shape, "yellow", "large", 0.5, 0.5)], 64)
    background = render([], 64)
    covered = (image - background).abs().sum(0)[0] / (torch.tensor(COLOURS["yellow"]) / 127.5 - 1 -
                                                      (background[:, 0, 0, 0])).abs().sum()
    expected = area * (SIZES["large"] * 64) ** 2
    assert abs(covered.sum().item() - expected) / expected < 0.03


def test_bad_requests_are_clear_errors():
    with pytest.raises(ValueError, match="too small"):
        ShapesDataset(10, 4)
    with pytest.raises(IndexError, match="outside the dataset of 10"):
        ShapesDataset(10, 32)[10]
    with pytest.raises(ValueError, match="unknown shape"):
        render([Shape("hexagon", "red", "small", 0.5, 0.5)], 32)
