"""Viewer frame rate: what view.py does for one browser frame, timed per layer, without a browser.

One frame = the deformation at the frame's time + the render of the layer at the page's size +
the copy to the host + the JPEG encoding viser sends (the websocket transfer is not included).
Poses walk through the training cameras and the time moves on every frame, as when a user
scrubs or plays; the first --warmup frames are not timed.

    python benchmarks/viewer_fps.py -m OUT [--width 960 --height 540] [--frames 200] [--json PATH]
"""
import io
import json
import os
import platform
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import view  # noqa: E402
from render import resolve_args  # noqa: E402


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def time_layer(live, poses, width: int, height: int, layer: str, frames: int, warmup: int) -> dict:
    settings = view.LayerSettings(layer)
    render_s, encode_s = 0.0, 0.0
    for i in range(warmup + frames):
        c2w, fov_y = poses[i % len(poses)]
        camera = view.ViewerCamera.from_pose(c2w, fov_y, width, height, live.device)
        start = time.perf_counter()
        image = live.frame(camera, (i % 100) / 99.0, settings)   # frame() returns a host array: synced
        middle = time.perf_counter()
        jpeg(image)
        end = time.perf_counter()
        if i >= warmup:
            render_s, encode_s = render_s + middle - start, encode_s + end - middle
    total = (render_s + encode_s) / frames
    return {"layer": layer, "fps": 1.0 / total, "ms_per_frame": total * 1000.0,
            "render_ms": render_s / frames * 1000.0, "jpeg_ms": encode_s / frames * 1000.0}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser, model_params, pipeline_params = view.build_parser()
    parser.add_argument("--width", type=int, default=960)
    parser.add_argument("--height", type=int, default=540)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--json", default=None, help="write the figures here")
    args = resolve_args(argv, parser)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    live, scene, iteration = view.load_live_model(args, model_params, pipeline_params, device)
    poses = [view.camera_pose(c) for c in scene.getTrainCameras()]
    rows = [time_layer(live, poses, args.width, args.height, layer, args.frames, args.warmup) for layer in view.LAYERS]
    result = {"command": "python benchmarks/viewer_fps.py " + " ".join(argv), "model": args.model_path,
              "iteration": iteration, "gaussians": int(live.gaussians.get_xyz.shape[0]),
              "size": [args.width, args.height], "device": torch.cuda.get_device_name(0) if device.type == "cuda"
              else platform.processor() or "cpu", "layers": rows}
    for row in rows:
        print(f"{row['layer']:>9}: {row['fps']:6.1f} fps ({row['render_ms']:.1f} ms render, {row['jpeg_ms']:.1f} ms JPEG)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
