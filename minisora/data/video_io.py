"""Videos in and out: .mp4 with PyAV (H.264, yuv420p), GIFs and frame-grid PNGs with Pillow, inline notebook display.

Tensors follow minisora's convention, (3, T, H, W) floats in [-1, 1]; on disk and in codecs a video is T frames of
(H, W, 3) bytes. Pillow writes the GIFs because its palette per frame keeps flat colours exact, where PyAV's GIF
encoder dithers them.
"""
import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Union

import av
import numpy as np
import torch
from PIL import Image

PathLike = Union[str, Path]


class VideoReadError(RuntimeError):
    """A video file that cannot be used: unreadable, empty, without a video stream, or too short."""


def to_frames(video: torch.Tensor) -> np.ndarray:
    """A video (3, T, H, W) in [-1, 1] as T frames of bytes: (T, H, W, 3) uint8."""
    if video.dim() != 4 or video.shape[0] != 3:
        raise ValueError(f"expected a video (3, T, H, W), got shape {tuple(video.shape)}; "
                         f"index one video of a batch (B, 3, T, H, W) first")
    pixels = ((video.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(1, 2, 3, 0).contiguous().numpy()


def from_frames(frames: Union[np.ndarray, Sequence[np.ndarray]]) -> torch.Tensor:
    """Frames of bytes (T, H, W, 3) as a video (3, T, H, W) in [-1, 1]."""
    pixels = torch.from_numpy(np.ascontiguousarray(np.stack(list(frames))))  # (T, H, W, 3)
    return pixels.permute(3, 0, 1, 2).float() / 127.5 - 1


def psnr(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of two videos in [-1, 1] (peak-to-peak 2): 10 log10(2^2 / MSE)."""
    mse = (reference.double() - estimate.double()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * np.log10(4.0 / mse)


def write_video(path: PathLike, video: torch.Tensor, fps: float = 8, quality: int = 12) -> Path:
    """Write a video (3, T, H, W) in [-1, 1] as H.264 in yuv420p, the format every player reads. `quality` is x264's
    constant rate factor: 0 is lossless in yuv420p, 12 is near-transparent, 23 is x264's default."""
    frames = to_frames(video)
    _, height, width, _ = frames.shape
    if height % 2 or width % 2:
        raise ValueError(f"yuv420p needs an even height and width, got {height}x{width}; crop or resize by one pixel")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=round(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(quality)}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())  # flush the encoder's delayed frames
    return path


@dataclass(frozen=True)
class VideoInfo:
    """What a video file's header says: frames (counted from packets when the header has no count), rate, size."""
    frames: int
    fps: float
    height: int
    width: int


def probe_video(path: PathLike) -> VideoInfo:
    """Read a video's header without decoding it; a file that cannot be used raises VideoReadError saying why."""
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise VideoReadError(f"{path}: the file is empty (0 bytes)")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path}: the file has no video stream")
            stream = container.streams.video[0]
            frames = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            return VideoInfo(frames, fps, stream.height, stream.width)
    except av.error.FFmpegError as error:
        raise VideoReadError(f"{path}: not a readable video ({error})") from None


def read_video(path: PathLike, indices: Optional[Iterable[int]] = None) -> torch.Tensor:
    """Decode a video (3, T, H, W) in [-1, 1]: every frame, or only the frames at `indices` (in order, stopping
    once the last is decoded). A file that cannot be decoded, or has fewer frames than asked for, raises
    VideoReadError."""
    order = None if indices is None else [int(index) for index in indices]  # read once: `indices` may be an iterator
    if order is not None and not order:
        raise ValueError(f"{path}: asked for no frames; give at least one index, or None for every frame")
    wanted = None if order is None else set(order)
    last = None if order is None else max(order)
    frames, decoded = {}, 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path}: the file has no video stream")
            for number, frame in enumerate(container.decode(video=0)):
                decoded = number + 1
                if wanted is None or number in wanted:
                    frames[number] = frame.to_ndarray(format="rgb24")
                if last is not None and number >= last:
                    break
    except av.error.FFmpegError as error:
        raise VideoReadError(f"{path}: decoding failed after {len(frames)} frames ({error})") from None
    if not frames:
        raise VideoReadError(f"{path}: no frames could be decoded")
    if wanted is not None and len(frames) < len(wanted):
        raise VideoReadError(f"{path}: asked for frame {last} but the video has only {decoded} frames")
    return from_frames([frames[number] for number in (order if order is not None else sorted(frames))])


def tile_videos(videos: torch.Tensor, columns: int, gap: int = 0) -> torch.Tensor:
    """A batch (N, 3, T, H, W) as one video (3, T, rows * H, columns * W), `columns` per row, `gap` dark pixels
    between tiles."""
    count, channels, length, height, width = videos.shape
    rows = -(-count // columns)
    canvas = torch.full((channels, length, rows * (height + gap) - gap, columns * (width + gap) - gap), -1.0)
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = row * (height + gap), column * (width + gap)
        canvas[:, :, top:top + height, left:left + width] = videos[index].detach().float().cpu()
    return canvas


def enlarge(frames: np.ndarray, scale: int) -> np.ndarray:
    """Frames (T, H, W, 3) with every pixel drawn scale x scale (nearest neighbour: tiny videos stay sharp)."""
    return frames.repeat(scale, axis=1).repeat(scale, axis=2) if scale > 1 else frames


def gif_bytes(video: torch.Tensor, fps: float = 8, scale: int = 1) -> bytes:
    """A video (3, T, H, W) in [-1, 1] as an endlessly looping GIF."""
    images = [Image.fromarray(frame) for frame in enlarge(to_frames(video), scale)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0,
                   optimize=False, disposal=1)
    return buffer.getvalue()


def write_gif(path: PathLike, video: torch.Tensor, fps: float = 8, scale: int = 1) -> Path:
    """Write a video (3, T, H, W) or a batch (N, 3, T, H, W, tiled in a row) as a looping GIF."""
    if video.dim() == 5:
        video = tile_videos(video, columns=len(video), gap=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gif_bytes(video, fps, scale))
    return path


def write_frame_grid(path: PathLike, videos: torch.Tensor, scale: int = 2) -> Path:
    """Write a PNG with one row per video of a batch (N, 3, T, H, W) (or one video) and one column per frame."""
    if videos.dim() == 4:
        videos = videos.unsqueeze(0)
    count, channels, length, height, width = videos.shape
    frames_as_images = videos.permute(0, 2, 1, 3, 4).reshape(count * length, channels, 1, height, width)
    grid = to_frames(tile_videos(frames_as_images, columns=length, gap=1))[0]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(enlarge(grid[None], scale)[0]).save(path)
    return path


def write_image(path: PathLike, image: torch.Tensor, scale: int = 1) -> Path:
    """Write a one-frame video (3, 1, H, W) (an image, minisora's way) as a PNG, enlarged `scale` times."""
    if image.dim() != 4 or image.shape[1] != 1:
        raise ValueError(f"write_image takes an image (3, 1, H, W), got shape {tuple(image.shape)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(enlarge(to_frames(image), scale)[0]).save(path)
    return path


def read_image(path: PathLike) -> torch.Tensor:
    """An image file (PNG, JPEG, ... anything Pillow opens) as a one-frame video (3, 1, H, W) in [-1, 1]."""
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no image at {path}") from None
    except OSError as error:
        raise ValueError(f"{path} is not a readable image ({error})") from None
    return from_frames(pixels[None])


def show_video(videos: torch.Tensor, fps: float = 8, scale: int = 4, captions: Optional[List[str]] = None):
    """Show a video (3, T, H, W) or a batch (N, 3, T, H, W) inline in a notebook as looping GIFs side by side,
    each under its caption if given. Returns an IPython HTML object (the GIFs are embedded, so they stay in the
    saved notebook)."""
    from IPython.display import HTML

    if videos.dim() == 4:
        videos = videos.unsqueeze(0)
    captions = captions or [""] * len(videos)
    if len(captions) != len(videos):
        raise ValueError(f"got {len(captions)} captions for {len(videos)} videos; give one per video or none")
    cells = []
    for video, caption in zip(videos, captions):
        data = base64.b64encode(gif_bytes(video, fps, scale)).decode("ascii")
        cells.append(f'<figure style="display:inline-block;margin:4px;text-align:center">'
                     f'<img src="data:image/gif;base64,{data}" style="image-rendering:pixelated"/>'
                     f'<figcaption style="font-size:11px;max-width:{video.shape[-1] * scale}px">{caption}</figcaption>'
                     f'</figure>')
    return HTML("".join(cells))
