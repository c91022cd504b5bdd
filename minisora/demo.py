"""A web page to prompt a trained model every way: `python -m minisora demo --checkpoint runs/sora/model.pt` opens it
on http://127.0.0.1:7860 (Gradio, in the `demo` extra: pip install -e ".[demo]").

Each tab is a task of the pipeline (minisora/pipeline.py): text to video (or an image, with 1 frame), image to video,
extension forward or backward, first and last frames, a loop, and an edit (SDEdit) with its strength. Every tab takes
the frames, size, steps, guidance and seed where they apply, shows the video (downloadable) and, when the caption
names what the model's world can show, its score against the world. Bad input (an image of the wrong size, a caption
of unknown words, an unreadable file) shows the same clear error the command line gives, and the page keeps working.
"""
import tempfile
from pathlib import Path
from typing import Optional, Tuple

from .data.video_io import write_image, write_video
from .pipeline import TinySora, Videos

WORLD_FRAME_SEED = 11  # which clip of the world "use a frame of the world" takes its first frame from


def _gradio():
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # a local page: nothing is sent anywhere
    try:
        import gradio
    except ImportError:
        raise ImportError('the demo needs Gradio: pip install -e ".[demo]" (or pip install gradio)') from None
    return gradio


def _size(height: float, width: float) -> Optional[Tuple[int, int]]:
    """The output's (height, width), or None for the model's own size (0 in either box)."""
    return None if not height or not width else (int(height), int(width))


def _frames(frames: float) -> Optional[int]:
    return int(frames) if frames else None


class Demo:
    """The page's handlers: each runs one task of a TinySora and returns (the video's file, its score as text)."""

    def __init__(self, model: TinySora, folder: Optional[Path] = None):
        self.model = model
        self.folder = Path(folder or tempfile.mkdtemp(prefix="minisora-demo-"))
        self.made = 0

    def _show(self, videos: Videos) -> Tuple[str, str]:
        """The first video as a file the page can play (an .mp4; a .png for an image) and a line of its score."""
        self.made += 1
        video = videos.tensor[0]
        if video.shape[1] == 1:
            path = write_image(self.folder / f"{self.made:04d}.png", video, scale=8)
        else:
            path = write_video(self.folder / f"{self.made:04d}.mp4",
                               video.repeat_interleave(8, dim=2).repeat_interleave(8, dim=3))
        try:
            scores = Videos(videos.tensor[:1], videos.captions[:1], videos.dataset).scores()
            score = "scored against the world: " + ", ".join(f"{name} {value:.0%}" for name, value in scores.items())
        except ValueError as reason:  # a caption that names nothing the world shows
            score = f"not scored: {reason}"
        return str(path), score

    def _run(self, task, *arguments, **options) -> Tuple[str, str]:
        gradio = _gradio()
        try:
            return self._show(task(*arguments, num=1, **options))
        except (ValueError, OSError, RuntimeError) as error:  # bad input: the message, and the page goes on
            raise gradio.Error(str(error)) from None

    @staticmethod
    def _common(steps, guidance, seed) -> dict:
        return dict(steps=int(steps), guidance=float(guidance), seed=int(seed))

    def text_to_video(self, prompt, frames, height, width, steps, guidance, seed):
        return self._run(self.model.text_to_video, prompt, frames=_frames(frames), size=_size(height, width),
                         **self._common(steps, guidance, seed))

    def image_to_video(self, image, prompt, frames, steps, guidance, seed):
        if not image:
            raise _gradio().Error("give the first frame: upload an image, or press 'use a frame of the world'")
        return self._run(self.model.image_to_video, image, prompt, frames=_frames(frames),
                         **self._common(steps, guidance, seed))

    def extend(self, video, prompt, backward, frames, steps, guidance, seed):
        if not video:
            raise _gradio().Error("give the clip to extend: upload a video")
        return self._run(self.model.extend, video, prompt, backward=bool(backward), frames=_frames(frames),
                         **self._common(steps, guidance, seed))

    def interpolate(self, first, last, prompt, steps, guidance, seed):
        if not first or not last:
            raise _gradio().Error("give both the first and the last frame")
        return self._run(self.model.interpolate, first, last, prompt, **self._common(steps, guidance, seed))

    def loop(self, prompt, steps, guidance, seed):
        return self._run(self.model.loop, prompt, **self._common(steps, guidance, seed))

    def edit(self, video, prompt, strength, steps, guidance, seed):
        if not video:
            raise _gradio().Error("give the clip to edit: upload a video")
        return self._run(self.model.edit, video, prompt, strength=float(strength),
                         **self._common(steps, guidance, seed))

    def world_frame(self) -> str:
        """A first frame drawn from the model's world, at its size, as an image file."""
        from tiny_datasets.videos import video_dataset

        _, frames, height, width = self.model.data_shape
        clip = video_dataset(self.model.config.dataset, num_items=1, image_size=height, num_frames=max(frames, 2),
                             seed=WORLD_FRAME_SEED)[0]["video"]
        self.made += 1
        return str(write_image(self.folder / f"{self.made:04d}-world.png", clip[:, :1]))

    def world_clip(self) -> str:
        """A clip of the model's world, at its size and length, as a video file."""
        from tiny_datasets.videos import video_dataset

        _, frames, height, width = self.model.data_shape
        clip = video_dataset(self.model.config.dataset, num_items=1, image_size=height, num_frames=frames,
                             seed=WORLD_FRAME_SEED)[0]["video"]
        self.made += 1
        return str(write_video(self.folder / f"{self.made:04d}-world.mp4", clip))


def build_demo(model: TinySora, folder: Optional[Path] = None):
    """The Gradio page (gradio.Blocks) for `model`; each task's button is also an API endpoint of its name."""
    gradio = _gradio()
    demo = Demo(model, folder)
    _, window, height, width = model.data_shape
    example = "a large red square moving right slowly"

    def settings(with_frames: bool = True):
        rows = []
        with gradio.Row():
            if with_frames:
                rows.append(gradio.Number(value=0, precision=0, label=f"frames (0: the model's {window})"))
            rows += [gradio.Slider(1, 100, value=30, step=1, label="steps"),
                     gradio.Slider(0, 10, value=4, step=0.5, label="guidance"),
                     gradio.Number(value=0, precision=0, label="seed")]
        return rows

    def outputs(tab: str):
        return [gradio.Video(label="video", elem_id=f"{tab}-video"), gradio.Markdown(elem_id=f"{tab}-score")]

    with gradio.Blocks(title="minisora: tiny Sora") as page:
        gradio.Markdown(f"# Tiny Sora\nA {model.config.dataset} world model trained by minisora: {window} frames of "
                        f"{height}x{width}. Its words: {' '.join(model.tokenizer.words[3:])}")
        with gradio.Tab("Text to video"):
            prompt = gradio.Textbox(value=example, label="caption", elem_id="caption")
            frames, steps, guidance, seed = settings()
            with gradio.Row():
                out_height = gradio.Number(value=0, precision=0, label=f"height (0: {height})")
                out_width = gradio.Number(value=0, precision=0, label=f"width (0: {width})")
            button = gradio.Button("Generate", variant="primary", elem_id="generate")
            video, score = outputs("text")
            button.click(demo.text_to_video, [prompt, frames, out_height, out_width, steps, guidance, seed],
                         [video, score], api_name="text_to_video")
        with gradio.Tab("Image to video"):
            image = gradio.Image(type="filepath", label="first frame")
            world = gradio.Button("use a frame of the world")
            world.click(demo.world_frame, [], [image], api_name="world_frame")
            prompt = gradio.Textbox(value=example, label="caption")
            frames, steps, guidance, seed = settings()
            button = gradio.Button("Generate", variant="primary")
            video, score = outputs("image")
            button.click(demo.image_to_video, [image, prompt, frames, steps, guidance, seed], [video, score],
                         api_name="image_to_video")
        with gradio.Tab("Extend"):
            clip = gradio.Video(label="clip to extend")
            world = gradio.Button("use a clip of the world")
            world.click(demo.world_clip, [], [clip], api_name="world_clip")
            prompt = gradio.Textbox(value=example, label="caption")
            backward = gradio.Checkbox(label="backward (what leads into the clip)")
            frames, steps, guidance, seed = settings()
            button = gradio.Button("Generate", variant="primary")
            video, score = outputs("extend")
            button.click(demo.extend, [clip, prompt, backward, frames, steps, guidance, seed], [video, score],
                         api_name="extend")
        with gradio.Tab("First and last frames"):
            with gradio.Row():
                first = gradio.Image(type="filepath", label="first frame")
                last = gradio.Image(type="filepath", label="last frame")
            prompt = gradio.Textbox(value=example, label="caption")
            steps, guidance, seed = settings(with_frames=False)
            button = gradio.Button("Generate", variant="primary")
            video, score = outputs("interpolate")
            button.click(demo.interpolate, [first, last, prompt, steps, guidance, seed], [video, score],
                         api_name="interpolate")
        with gradio.Tab("Loop"):
            prompt = gradio.Textbox(value=example, label="caption")
            steps, guidance, seed = settings(with_frames=False)
            button = gradio.Button("Generate", variant="primary")
            video, score = outputs("loop")
            button.click(demo.loop, [prompt, steps, guidance, seed], [video, score], api_name="loop")
        with gradio.Tab("Edit"):
            clip = gradio.Video(label="clip to edit")
            world = gradio.Button("use a clip of the world")
            world.click(demo.world_clip, [], [clip], api_name="world_clip_to_edit")
            prompt = gradio.Textbox(value="a large blue square moving right slowly", label="caption")
            strength = gradio.Slider(0.05, 1.0, value=0.6, step=0.05, label="strength (how much to redraw)")
            steps, guidance, seed = settings(with_frames=False)
            button = gradio.Button("Generate", variant="primary")
            video, score = outputs("edit")
            button.click(demo.edit, [clip, prompt, strength, steps, guidance, seed], [video, score], api_name="edit")
    return page


def run_demo(checkpoint: str, port: int = 7860, device: str = "auto", open_browser: bool = False) -> None:
    """`python -m minisora demo`: the page for a model.pt or a saved folder, on 127.0.0.1 only."""
    _gradio()
    model = TinySora.from_pretrained(checkpoint, device=device)
    print(f"the demo of {checkpoint} on {model.device}: http://127.0.0.1:{port} (Ctrl+C stops it)")
    build_demo(model).launch(server_name="127.0.0.1", server_port=port, inbrowser=open_browser)
