"""What the text-to-video trainer learns from: clips of a tiny world rendered at each bucket's size (held-out
captions kept out), or a folder of the user's own videos, each clip put in the bucket of its own size and length.

A folder (`VideoConfig.data`) is read as `data.folder` reads one (captions.jsonl, captions.csv or NAME.txt beside
each video); every usable file is decoded once into memory, as the tiny world's clips are, scaled so that its
shorter side is `image_size`, cropped to a multiple of the patch, and cut to the longest of a few lengths (1, a
quarter, half or all of `num_frames`) that it holds. Clips of one size and length form a bucket whose batch makes
a step cost about what the main size's does. Files that cannot be used are skipped and counted. Every tenth clip
is held out: a user's videos have no ground truth to score samples against, so the run reports the loss on clips
it never trained on instead (beside an untrained model's), and scores samples too when the folder was written
from a tiny world (`python -m minisora data` keeps the truth in captions.jsonl).
"""
import math
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from tiny_datasets.videos import video_dataset
from ..data.buckets import Bucket, parse_buckets
from ..data.folder import VideoFolderDataset, frame_indices, resize_and_crop
from ..data.video_io import VideoReadError, read_video
from ..evaluation import held_out_truth

TrainingSet = Tuple[Bucket, torch.Tensor, torch.Tensor]  # a bucket, its data (N, C, T, H, W), caption ids (N, M)
HOLD_OUT_EVERY = 10  # of a folder's clips, every tenth is held out


def training_buckets(config) -> List[Bucket]:
    """The sizes a run on a tiny world trains on, the main one first."""
    if config.buckets:
        return parse_buckets(config.buckets)
    return [Bucket(config.num_frames, config.image_size, config.image_size, config.batch_size)]


def held_out_clips(config) -> Tuple[torch.Tensor, List[str]]:
    """The clips (N, 3, T, H, W) and captions that are sampled and scored, from a seed the training never uses."""
    videos, captions, _ = held_out_truth(config, config.num_frames)
    return videos, captions


def training_clips(config, held_out_captions: Sequence[str], progress: bool = True,
                   bucket: Optional[Bucket] = None) -> Tuple[torch.Tensor, List[str]]:
    """num_clips clips of the world (at the bucket's size; the main size by default) whose captions are not among
    the held-out ones, where the world has captions to spare (`holds_out_captions`; the ball world's held-out clips
    are new throws of captions trained on): (videos, captions). One-frame clips are images, captioned without
    motion."""
    from tqdm.auto import tqdm

    bucket = bucket or training_buckets(config)[0]
    world = video_dataset(config.dataset, num_items=10**9, height=bucket.height, width=bucket.width,
                          num_frames=bucket.frames, seed=config.seed)
    excluded = set(held_out_captions) if world.holds_out_captions else set()
    videos, captions, index = [], [], 0
    with tqdm(total=config.num_clips, desc=f"render {config.dataset} clips {bucket.describe()}",
              disable=not progress) as bar:
        while len(videos) < config.num_clips:
            tracks = world.tracks(index)
            caption = world.caption(tracks)
            if caption not in excluded:
                videos.append(world.render(tracks))
                captions.append(caption)
                bar.update()
            index += 1
            if index > 100 * config.num_clips:
                raise ValueError(f"the held-out captions leave too few for {config.num_clips} training clips; "
                                 f"lower held_out ({config.held_out})")
    return torch.stack(videos), captions


def clip_size(frames: int, height: int, width: int, config) -> Tuple[int, int, int]:
    """The bucket size (T, H, W) of a file of `frames` frames of height x width: the shorter side scaled to
    image_size, both sides cropped to a multiple of the patch, and the longest of 1, num_frames / 4, num_frames / 2
    and num_frames that the file holds."""
    scale = config.image_size / min(height, width)
    patch = config.patch_size
    sides = [max(patch, math.floor(side * scale / patch) * patch) for side in (height, width)]
    lengths = sorted({1, max(1, config.num_frames // 4), max(1, config.num_frames // 2), config.num_frames})
    return max(length for length in lengths if length <= frames), sides[0], sides[1]


class FolderData:
    """A folder of videos as training buckets and held-out clips, decoded once (see the module's docstring)."""

    def __init__(self, config, progress: bool = True):
        from tqdm.auto import tqdm

        listing = VideoFolderDataset(config.data, num_frames=1, size=config.image_size)  # finds and probes the files
        self.skipped: List[Tuple[str, str]] = list(listing.skipped)
        groups: Dict[Tuple[int, int, int], List[Tuple[torch.Tensor, str]]] = defaultdict(list)
        self.held_out: Dict[Tuple[int, int, int], List[Tuple[torch.Tensor, str]]] = defaultdict(list)
        for number, (relative, caption, _, _) in enumerate(tqdm(listing.clips, desc=f"read {config.data}",
                                                                 disable=not progress)):
            info = listing.info[relative]
            size = clip_size(info.frames, info.height, info.width, config)
            try:
                video = resize_and_crop(read_video(listing.root / relative, frame_indices(0, size[0], 1)), size[1:])
            except VideoReadError as error:
                self.skipped.append((relative, str(error)))
                continue
            (self.held_out if number % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1 else groups)[size].append(
                (video, caption))
        if not groups:
            raise VideoReadError(f"no usable training clips in {config.data} ({len(self.skipped)} files skipped)")
        reference = config.num_frames * config.image_size ** 2
        # the main size is the one with most clips; each bucket's batch makes a step cost about the main's
        self.sizes = sorted(groups, key=lambda size: -len(groups[size]))
        self.buckets = [Bucket(*size, max(1, round(config.batch_size * reference / math.prod(size))),
                               float(len(groups[size]))) for size in self.sizes]
        self.groups = groups

    def captions(self) -> List[str]:
        return [caption for size in self.sizes for _, caption in self.groups[size]]

    def sets(self, tokenizer, caption_length: int) -> List[TrainingSet]:
        return [(bucket, torch.stack([video for video, _ in self.groups[size]]),
                 tokenizer.encode([caption for _, caption in self.groups[size]], caption_length))
                for bucket, size in zip(self.buckets, self.sizes)]

    def held_out_sets(self, tokenizer, caption_length: int) -> List[TrainingSet]:
        return [(Bucket(*size, len(clips)), torch.stack([video for video, _ in clips]),
                 tokenizer.encode([caption for _, caption in clips], caption_length))
                for size, clips in self.held_out.items()]

    def describe(self) -> str:
        sizes = ", ".join(f"{bucket.describe()} ({int(bucket.weight)} clips, batch {bucket.batch_size})"
                          for bucket in self.buckets)
        held = sum(len(clips) for clips in self.held_out.values())
        return f"buckets {sizes}; {held} clips held out; {len(self.skipped)} files skipped"


@torch.no_grad()
def held_out_loss(loss_of_batch, batches: int = 8, seed: int = 0) -> float:
    """The mean of `batches` losses of a loss_of_batch over held-out sets, at fixed random draws (the same times
    and noise for every model compared)."""
    generator = torch.Generator().manual_seed(seed)
    return float(sum(float(loss_of_batch(generator)) for _ in range(batches)) / batches)
