"""convert.py's helpers, from a video or a folder of frames to a scene: ``frames`` (listing,
video cutting, size checks) and ``sfm`` (pycolmap / COLMAP calls, focal search, undistortion)."""
