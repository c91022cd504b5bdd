"""Size buckets: training on several lengths, sizes and aspect ratios at once, images included (Sora's "native
sizes", the way Open-Sora does it).

A bucket is a clip size (frames x height x width) with its own batch size, so that a step costs about the same in
any bucket (Open-Sora 1.2's table at 144p: a batch of 475 images, 51 clips of 51 frames, 6 of 408), and a weight,
its share of the steps. Every batch comes from one bucket, so no clip is padded or cropped to another's size and
the network sees each at its own token grid (the video DiT has no size baked in). Images are the one-frame bucket.
Open-Sora and Open-Sora-Plan both compared this with NaViT's packing (several sizes in one sequence behind a
block-diagonal mask) and kept buckets.

The time shift that suits a size grows with it: a clip of more values stays recognisable at more noise, so its
training times are pushed further towards noise. Esser et al. (2024) shift by sqrt(m / n) for m values against a
reference n; Open-Sora 1.2 by sqrt(HW / 512^2) sqrt(T): `shift_for` scales the reference bucket's shift that way.
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch


@dataclass(frozen=True)
class Bucket:
    frames: int  # clip length T
    height: int  # H in pixels (or latent cells)
    width: int  # W
    batch_size: int  # clips per step drawn from this bucket
    weight: float = 1.0  # the bucket's share of steps, relative to the other buckets'

    @property
    def values(self) -> int:
        """Pixels (or latent cells) per channel of one clip: T H W."""
        return self.frames * self.height * self.width

    def describe(self) -> str:
        return f"{self.frames}x{self.height}x{self.width}"


def parse_buckets(text: str) -> List[Bucket]:
    """"16x32x32:32,1x32x32:128:0.5" -> buckets: frames x height x width : batch size [: weight], comma-separated."""
    buckets = []
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        pieces = part.split(":")
        try:
            frames, height, width = (int(side) for side in pieces[0].lower().split("x"))
            batch_size = int(pieces[1])
            weight = float(pieces[2]) if len(pieces) > 2 else 1.0
            if len(pieces) > 3 or min(frames, height, width, batch_size) < 1 or not weight > 0:
                raise ValueError
        except (ValueError, IndexError):
            raise ValueError(f"bucket {part!r} must be FRAMESxHEIGHTxWIDTH:BATCH[:WEIGHT] with positive numbers, "
                             f"e.g. 16x32x32:32 or 1x32x32:128:0.5") from None
        buckets.append(Bucket(frames, height, width, batch_size, weight))
    if not buckets:
        raise ValueError(f"buckets {text!r} names none; write e.g. 16x32x32:32,1x32x32:128")
    if len({(bucket.frames, bucket.height, bucket.width) for bucket in buckets}) < len(buckets):
        raise ValueError(f"buckets {text!r} name a size twice; give each size once, with its batch and weight")
    return buckets


def unseen_buckets(sizes: str) -> List[Bucket]:
    """"12x40x40,24x32x48" -> buckets of those sizes (batch 1): sizes to score at that training never drew."""
    return parse_buckets(",".join(f"{size}:1" for size in sizes.split(","))) if sizes else []


def pick_bucket(buckets: Sequence[Bucket], generator: Optional[torch.Generator] = None) -> int:
    """The index of the bucket the next batch comes from, drawn by weight (no draw when there is one)."""
    if len(buckets) == 1:
        return 0
    weights = torch.tensor([bucket.weight for bucket in buckets], dtype=torch.float64)
    return int(torch.multinomial(weights, 1, generator=generator))


def shift_for(bucket: Bucket, reference: Bucket, shift: float) -> float:
    """The time shift for `bucket`, given `shift` for `reference`: scaled by sqrt(values / reference values)
    (Esser et al. 2024, Section 5.3.2), never below 1 (no shift towards the data)."""
    return max(1.0, shift * math.sqrt(bucket.values / reference.values))
