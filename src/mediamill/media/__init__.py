"""Everything that touches media files: ffmpeg, probing, stitching.

Knows ffmpeg and nothing of backends or Prefect.
"""
