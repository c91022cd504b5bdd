"""The in-repo judge of generated images: a classifier that learns the shapes, and the Frechet distance."""
import pytest
import torch

from minisora.metrics import frechet_distance, gaussian_frechet_distance
from minisora.models.classifier import class_accuracy, train_classifier
from tiny_datasets.shapes import NUM_CLASSES, ShapesDataset


def test_gaussian_frechet_distance_matches_the_diagonal_closed_form():
    """For diagonal covariances the 2-Wasserstein distance squared is sum (m_a - m_b)^2 + sum (s_a - s_b)^2."""
    mean_a, mean_b = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, -1.0])
    std_a, std_b = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([3.0, 1.0, 0.5])
    expected = (mean_a - mean_b).pow(2).sum() + (std_a - std_b).pow(2).sum()
    distance = gaussian_frechet_distance(mean_a, torch.diag(std_a**2), mean_b, torch.diag(std_b**2))
    torch.testing.assert_close(distance, expected.double())
    rotation = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]  # invariant under a common rotation
    rotated = gaussian_frechet_distance(rotation @ mean_a.double(), rotation @ torch.diag(std_a**2).double() @ rotation.T,
                                        rotation @ mean_b.double(), rotation @ torch.diag(std_b**2).double() @ rotation.T)
    torch.testing.assert_close(rotated, expected.double())


@pytest.fixture(scope="module")
def judge():
    images, labels, _ = ShapesDataset(3000, 16, seed=0).tensors()
    return train_classifier(images, labels, NUM_CLASSES, steps=300)


def test_classifier_learns_the_shapes_on_held_out_images(judge):
    classifier, held_out_accuracy = judge
    assert held_out_accuracy > 0.95
    images, labels, _ = ShapesDataset(500, 16, seed=7).tensors()  # another seed: unseen scenes
    assert class_accuracy(classifier, images, labels) > 0.95
    assert class_accuracy(classifier, images, labels.roll(1)) < 0.3  # wrong labels score low


def test_frechet_distance_of_features_separates_real_from_corrupted(judge):
    classifier, _ = judge
    real, _, _ = ShapesDataset(1000, 16, seed=1).tensors()
    other, _, _ = ShapesDataset(1000, 16, seed=2).tensors()
    with torch.no_grad():
        features = classifier.features
        real_to_real = frechet_distance(features(real), features(other))
        real_to_blurred = frechet_distance(features(real), features(torch.nn.functional.avg_pool3d(
            other, (1, 3, 3), stride=1, padding=(0, 1, 1))))
        real_to_noise = frechet_distance(features(real), features(torch.rand_like(other) * 2 - 1))
    assert real_to_real * 3 < real_to_blurred < real_to_noise


def test_classifier_rejects_non_image_input(judge):
    with pytest.raises(ValueError, match=r"\(B, 3, 1, H, W\)"):
        judge[0](torch.zeros(2, 3, 16, 16))
