"""Small synthetic datasets that need no download: 2D toy distributions now, images and videos later."""
