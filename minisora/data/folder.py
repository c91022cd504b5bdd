"""Datasets over folders of videos with captions: the user's own clips, or a tiny dataset written to disk.

A folder holds video files (any container FFmpeg reads: .mp4, .mov, .mkv, .webm, .avi, .gif) and their captions,
from the first of these that exists:
  captions.jsonl  one {"video": "relative/path.mp4", "caption": "..."} per line (what `write_video_dataset` writes)
  captions.csv    columns `video` (or `path`) and `caption` (or `text`)
  NAME.txt        beside each NAME.mp4
and otherwise every video under the folder, captioned "".

Each item is `num_frames` frames taken every `stride` frames (or resampled to `fps`), resized so that the clip
covers `size` and cropped to it, in [-1, 1]. Files that cannot be used (unreadable, empty, without a video stream,
or shorter than a clip) are found when the dataset is built and either skipped and counted (`on_bad_file="skip"`,
listed in `.skipped` with the reason) or reported all at once as an error (`on_bad_file="error"`). A file that breaks
later, in the middle of decoding, is handled the same way when it is read.
"""
import csv
import json
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from .video_io import PathLike, VideoInfo, VideoReadError, probe_video, read_video, write_video

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif")
BAD_FILE_POLICIES = ("skip", "error")


def frame_indices(start: int, num_frames: int, step: float) -> List[int]:
    """Indices of `num_frames` frames from `start`, `step` source frames apart (a fractional step resamples the
    frame rate: step = source fps / wanted fps)."""
    return [start + round(number * step) for number in range(num_frames)]


def resize_and_crop(video: torch.Tensor, size: Tuple[int, int], generator: Optional[torch.Generator] = None
                    ) -> torch.Tensor:
    """Scale a video (3, T, H, W) so that it just covers `size` = (height, width), keeping its aspect ratio, then
    crop to `size`: centred, or at a random offset drawn from `generator`."""
    _, _, height, width = video.shape
    target_height, target_width = size
    scale = max(target_height / height, target_width / width)
    scaled = (max(target_height, round(height * scale)), max(target_width, round(width * scale)))
    if scaled != (height, width):
        # bilinear with antialiasing averages with non-negative weights, so [-1, 1] stays [-1, 1]
        video = F.interpolate(video.transpose(0, 1), size=scaled, mode="bilinear", antialias=True,
                              align_corners=False).transpose(0, 1)
    spare_height, spare_width = scaled[0] - target_height, scaled[1] - target_width
    if generator is None:
        top, left = spare_height // 2, spare_width // 2
    else:
        top = int(torch.randint(spare_height + 1, (1,), generator=generator))
        left = int(torch.randint(spare_width + 1, (1,), generator=generator))
    return video[:, :, top:top + target_height, left:left + target_width]


def read_captions(root: Path) -> Optional[Dict[str, str]]:
    """relative path -> caption from captions.jsonl or captions.csv in `root`, or None when neither exists."""
    if (root / "captions.jsonl").is_file():
        captions = {}
        for number, line in enumerate((root / "captions.jsonl").read_text().splitlines(), start=1):
            if line.strip():
                try:
                    record = json.loads(line)
                    captions[record["video"]] = record.get("caption", "")
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise ValueError(f"{root / 'captions.jsonl'} line {number} is not a JSON object with a \"video\" "
                                     f"key: {line[:80]!r}") from None
        return captions
    if (root / "captions.csv").is_file():
        with open(root / "captions.csv", newline="") as file:
            reader = csv.DictReader(file)
            columns = reader.fieldnames or []
            video_column = next((name for name in ("video", "path") if name in columns), None)
            caption_column = next((name for name in ("caption", "text") if name in columns), None)
            if video_column is None or caption_column is None:
                raise ValueError(f"{root / 'captions.csv'} has columns {columns}; it needs `video` (or `path`) and "
                                 f"`caption` (or `text`)")
            return {row[video_column]: row[caption_column] for row in reader}
    return None


class VideoFolderDataset(torch.utils.data.Dataset):
    """Clips from a folder of videos with captions; items are {"video": (3, T, H, W) in [-1, 1], "caption", "path"}."""

    def __init__(self, root: PathLike, num_frames: int = 17, size: Union[int, Tuple[int, int]] = 32, stride: int = 1,
                 fps: Optional[float] = None, random_start: bool = False, random_crop: bool = False,
                 on_bad_file: str = "skip", seed: int = 0):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"video folder {self.root} does not exist; write one with `python -m minisora data`")
        if on_bad_file not in BAD_FILE_POLICIES:
            raise ValueError(f"on_bad_file must be one of {BAD_FILE_POLICIES}, got {on_bad_file!r}")
        if num_frames < 1 or stride < 1 or (fps is not None and fps <= 0):
            raise ValueError(f"need num_frames >= 1, stride >= 1 and fps > 0 (or None); got num_frames={num_frames}, "
                             f"stride={stride}, fps={fps}")
        self.num_frames, self.stride, self.fps = num_frames, stride, fps
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.random_start, self.random_crop, self.on_bad_file, self.seed = random_start, random_crop, on_bad_file, seed
        self.epoch = 0
        self.skipped: List[Tuple[str, str]] = []  # (path, reason) of every file left out
        captions = read_captions(self.root)
        if captions is None:
            paths = sorted(path for path in self.root.rglob("*") if path.suffix.lower() in VIDEO_SUFFIXES)
            captions = {str(path.relative_to(self.root)): self._sidecar_caption(path) for path in paths}
        self.clips: List[Tuple[str, str, float, int]] = []  # (relative path, caption, step, frames) of usable files
        self.info: Dict[str, VideoInfo] = {}  # relative path -> frames, frame rate and size, of each usable file
        for relative, caption in captions.items():
            try:
                info = probe_video(self.root / relative)
                step = self._step(info.fps)
                needed = round((num_frames - 1) * step) + 1
                if info.frames < needed:
                    raise VideoReadError(f"{self.root / relative}: {info.frames} frames, fewer than the {needed} a clip "
                                         f"of {num_frames} frames at this stride or fps needs")
                self.clips.append((relative, caption, step, info.frames))
                self.info[relative] = info
            except VideoReadError as error:
                self.skipped.append((relative, str(error)))
        if self.skipped:
            self._report(f"{len(self.skipped)} of {len(captions)} files in {self.root} cannot be used")
        if not self.clips:
            raise VideoReadError(f"no usable videos in {self.root} ({len(captions)} listed, {len(self.skipped)} "
                                 f"unusable{': ' + self.skipped[0][1] if self.skipped else ''})")

    def _sidecar_caption(self, path: Path) -> str:
        sidecar = path.with_suffix(".txt")
        return sidecar.read_text().strip() if sidecar.is_file() else ""

    def _step(self, source_fps: float) -> float:
        if self.fps is None:
            return float(self.stride)
        if source_fps <= 0:
            raise VideoReadError("the file states no frame rate, so it cannot be resampled to fps; use stride instead")
        return source_fps / self.fps

    def _report(self, headline: str) -> None:
        listing = "\n".join(f"  {reason}" for _, reason in self.skipped[:10])
        more = f"\n  ... and {len(self.skipped) - 10} more" if len(self.skipped) > 10 else ""
        if self.on_bad_file == "error":
            raise VideoReadError(f"{headline}:\n{listing}{more}\nremove or fix them, or pass on_bad_file='skip' to "
                                 f"leave them out")
        warnings.warn(f"{headline}; skipping them (see .skipped):\n{listing}{more}", stacklevel=3)

    def set_epoch(self, epoch: int) -> None:
        """Random starts and crops are drawn from (seed, epoch, index): a new epoch draws new ones, reproducibly."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips)

    def load(self, index: int) -> dict:
        """Clip `index`, raising VideoReadError if its file fails to decode."""
        relative, caption, step, frames = self.clips[index]
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1_000_003 + index)
        last_start = frames - (round((self.num_frames - 1) * step) + 1)
        start = int(torch.randint(last_start + 1, (1,), generator=generator)) if self.random_start else 0
        video = read_video(self.root / relative, frame_indices(start, self.num_frames, step))
        video = resize_and_crop(video, self.size, generator if self.random_crop else None)
        return {"video": video, "caption": caption, "path": relative}

    def __getitem__(self, index: int) -> dict:
        for attempt in range(len(self.clips)):
            candidate = (index + attempt) % len(self.clips)
            try:
                return self.load(candidate)
            except VideoReadError as error:
                if self.on_bad_file == "error":
                    raise
                if all(path != self.clips[candidate][0] for path, _ in self.skipped):
                    self.skipped.append((self.clips[candidate][0], str(error)))
                    warnings.warn(f"skipping {error}; using the next clip instead", stacklevel=2)
        raise VideoReadError(f"every video in {self.root} failed to decode; see .skipped")


def write_video_dataset(dataset: Sequence[dict], folder: PathLike, fps: float = 8, quality: int = 12,
                        progress: bool = True) -> Path:
    """Write every item {"video", "caption"[, "truth"]} of a dataset as NNNNN.mp4 plus captions.jsonl, the layout
    `VideoFolderDataset` reads (the ground truth, when given, is kept in the index beside the caption)."""
    from tqdm.auto import tqdm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for index in tqdm(range(len(dataset)), desc=f"writing {folder}", disable=not progress):
        item = dataset[index]
        name = f"{index:05d}.mp4"
        write_video(folder / name, item["video"], fps=fps, quality=quality)
        record = {"video": name, "caption": item["caption"]}
        if "truth" in item:
            record["truth"] = [track.as_dict() if hasattr(track, "as_dict") else track for track in item["truth"]]
        lines.append(json.dumps(record))
    temporary = folder / "captions.jsonl.partial"
    temporary.write_text("\n".join(lines) + "\n")
    temporary.replace(folder / "captions.jsonl")  # the index appears only once every video is written
    return folder
