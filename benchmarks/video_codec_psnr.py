"""What does storing the tiny videos as .mp4 cost? Writes clips of each tiny dataset with x264 in yuv420p at a few
quality settings, reads them back, and prints mean PSNR and file size as a markdown table (recorded in
`benchmarks/RESULTS.md`; the tests assert floors below these numbers).

    python benchmarks/video_codec_psnr.py
"""
import tempfile
from pathlib import Path

import torch

from minisora.data.video_io import psnr, read_video, write_video
from tiny_datasets.videos import VIDEO_DATASETS, video_dataset

QUALITIES = (0, 12, 23)  # x264's constant rate factor: 0 lossless in yuv420p, 12 minisora's default, 23 x264's
CLIPS = 16


def main():
    print(f"torch {torch.__version__}; {CLIPS} clips of 17 frames per row, PSNR in dB (mean over clips) and bytes "
          f"per clip\n")
    print("| dataset | side | " + " | ".join(f"quality {q}" for q in QUALITIES) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in QUALITIES) + " |")
    with tempfile.TemporaryDirectory() as folder:
        for name in VIDEO_DATASETS:
            for side in (32, 64):
                dataset = video_dataset(name, num_items=CLIPS, image_size=side)
                cells = []
                for quality in QUALITIES:
                    scores, sizes = [], []
                    for index in range(CLIPS):
                        video = dataset[index]["video"]
                        path = write_video(Path(folder) / "clip.mp4", video, quality=quality)
                        scores.append(psnr(video, read_video(path)))
                        sizes.append(path.stat().st_size)
                    cells.append(f"{sum(scores) / CLIPS:.1f} dB, {sum(sizes) // CLIPS} B")
                print(f"| {name} | {side} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
