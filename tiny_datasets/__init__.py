"""Small synthetic datasets that need no download: 2D toy distributions and a Gaussian mixture with an exact
denoiser (toy2d.py), images of coloured shapes (shapes.py), videos of moving shapes, digits and a bouncing ball
with captions and every object's true position in every frame (videos.py), and the worlds that test the "world
simulator" claims: collisions, occlusion, a painter, Kang et al.'s physics scenarios (worlds.py)."""
