"""Small synthetic datasets that need no download: 2D toy distributions and a Gaussian mixture with an exact
denoiser (toy2d.py), images of coloured shapes (shapes.py), and videos of moving shapes, digits and a bouncing ball
with captions and every object's true position in every frame (videos.py)."""
