"""`python -m minisora data`: write one of the tiny procedural video datasets to disk the way a real dataset looks —
one .mp4 per clip and a captions.jsonl index that also keeps each clip's ground truth."""
from dataclasses import dataclass

from tiny_datasets.videos import video_dataset
from ..config import check_ranges
from .folder import write_video_dataset


# the range of every numeric field of TinyDataConfig
TINY_DATA_CONFIG_RANGES = {
    "num_items": "[1, inf)", "image_size": "[16, inf)", "num_frames": "[1, inf)", "num_digits": "[1, 2]",
    "fps": "(0, inf)", "quality": "[0, 51]", "seed": "[0, inf)",
}


@dataclass
class TinyDataConfig:
    # "shapes", "digits", "ball", or a world of lesson 15 (tiny_datasets/worlds.py): "collisions", "occlusion",
    # "painter" or "physics"
    dataset: str = "shapes"
    num_items: int = 200  # clips to write
    image_size: int = 32  # side of every frame (even, for yuv420p)
    num_frames: int = 17  # frames per clip (1 + 4k suits a causal VAE with 4x temporal compression)
    num_digits: int = 1  # digits per clip, for dataset=digits
    fps: float = 8  # frame rate stored in the files
    quality: int = 12  # x264's constant rate factor: 0 lossless (in yuv420p), 23 x264's default
    seed: int = 0  # the same seed writes the same clips
    out_dir: str = "data/tiny_shapes"  # the folder to write

    def __post_init__(self):
        check_ranges(self, TINY_DATA_CONFIG_RANGES)


def write_tiny_dataset(config: TinyDataConfig):
    options = dict(num_items=config.num_items, image_size=config.image_size, num_frames=config.num_frames,
                   seed=config.seed)
    if config.dataset == "digits":
        options["num_digits"] = config.num_digits
    folder = write_video_dataset(video_dataset(config.dataset, **options), config.out_dir, config.fps, config.quality)
    print(f"wrote {config.num_items} clips and captions.jsonl to {folder}")
    return folder
