"""Video data: reading and writing videos (video_io), datasets over folders of videos (folder), and the command
that writes a tiny procedural dataset to disk (tiny)."""
