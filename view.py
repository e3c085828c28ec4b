"""A web viewer for a trained (or training) model: fly the camera, scrub time, switch the layers.

    python view.py -m OUT [--iteration N] [--port 8080] [--host 0.0.0.0] [--max_width 960]

then open http://localhost:8080 (through SSH: ssh -L 8080:localhost:8080 HOST, then the same
address on your machine). The page is served by viser; each browser flies its own camera, and
the controls (time, layer, hand rule) are shared by all. Frames come from our renderer (the CUDA
rasterizer where it is available, the PyTorch reference otherwise) at up to --max_width pixels
wide (the page's aspect ratio), drawn smaller while the view changes when a frame is slow
(TARGET_FRAME_SECONDS), so the reference rasterizer on a CPU stays interactive.

The page offers: a time slider over [0, 1] with play/pause at a frame rate of your choice; a
list of the training and test cameras to snap to (with "follow the camera's time" on, snapping
also sets the time to that camera's own); the layer: full render, static, hands, hand map (the
rendered hand feature) or depth; render.py's decomposition rule and threshold, applied live; and
the Gaussian count and frame time. train.py --viewer serves the same page while training.

The pieces that do not need a browser (camera conversion, the frame of a layer at a time) are
plain functions and classes here, tested in tests/test_view.py; the viser wiring is ``ViewerPage``.
"""
import math
import os
import sys
import threading
import time
from argparse import ArgumentParser, Namespace
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from arguments import ModelParams, PipelineParams
from gaussian_renderer import background_color, render
from render import RenderError, deformation_active, hand_map_image, load_model, resolve_args
from scene.cameras import Camera
from scene.decomposition import HAND_RULES, Decomposition, add_decomposition_args, decompose_model, deformation_gate
from scene.readers.dataset_types import DatasetError
from utils.general_utils import set_cpu_threads
from utils.graphics_utils import getProjectionMatrix
from utils.image_utils import depth_for_viewing, to_uint8

LAYERS = ("full", "static", "hands", "hand map", "depth")
# While the view changes, frames are drawn smaller when they take longer than this (the reference
# rasterizer on a CPU), down to MIN_RENDER_SCALE of the width; once the view has been still for
# REFINE_AFTER_SECONDS, one frame at the full width follows.
TARGET_FRAME_SECONDS = 0.1
MIN_RENDER_SCALE = 0.25
REFINE_AFTER_SECONDS = 0.3
EXIT_BAD_INPUT = 2
INSTALL_HINT = "pip install viser"


class ViewerError(Exception):
    """A problem with the command line or the model folder; printed in one line (exit status 2)."""


# ---------------------------------------------------------------- cameras

def wxyz_to_rotation(wxyz) -> np.ndarray:
    """Unit quaternion (w, x, y, z) -> 3x3 rotation matrix."""
    w, x, y, z = np.asarray(wxyz, dtype=np.float64) / np.linalg.norm(wxyz)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def rotation_to_wxyz(rotation: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix -> unit quaternion (w, x, y, z) with w >= 0 (Shepperd's method: the
    largest of the four candidates is computed first, so no division by a small number)."""
    r = np.asarray(rotation, dtype=np.float64)
    trace = np.trace(r)
    candidates = [trace, r[0, 0], r[1, 1], r[2, 2]]
    k = int(np.argmax(candidates))
    if k == 0:
        s = 2.0 * math.sqrt(1.0 + trace)
        q = [0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    else:
        i, j, l = k - 1, k % 3, (k + 1) % 3
        s = 2.0 * math.sqrt(max(1.0 + r[i, i] - r[j, j] - r[l, l], 1e-12))
        q = [0.0, 0.0, 0.0, 0.0]
        q[0] = (r[l, j] - r[j, l]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (r[j, i] + r[i, j]) / s
        q[1 + l] = (r[l, i] + r[i, l]) / s
    q = np.array(q)
    return q / np.linalg.norm(q) * (1.0 if q[0] >= 0 else -1.0)


@dataclass
class ViewerCamera:
    """What render() reads from a camera, built from a camera-to-world pose (OpenCV axes: x right,
    y down, z forward, as viser and COLMAP use) and a vertical field of view."""
    image_width: int
    image_height: int
    FoVx: float
    FoVy: float
    world_view_transform: torch.Tensor   # [4, 4] transposed (row vectors), as scene.cameras.Camera
    full_proj_transform: torch.Tensor
    camera_center: torch.Tensor

    @classmethod
    def from_pose(cls, c2w: np.ndarray, fov_y: float, width: int, height: int,
                  device: torch.device = torch.device("cpu")) -> "ViewerCamera":
        fov_x = 2.0 * math.atan(math.tan(fov_y / 2.0) * width / height)
        w2c = np.linalg.inv(np.asarray(c2w, dtype=np.float64))
        view = torch.tensor(w2c, dtype=torch.float32).transpose(0, 1).contiguous().to(device)
        projection = getProjectionMatrix(Camera.znear, Camera.zfar, fov_x, fov_y).transpose(0, 1).to(device)
        return cls(int(width), int(height), fov_x, fov_y, view, view @ projection,
                   torch.tensor(np.asarray(c2w)[:3, 3], dtype=torch.float32, device=device))


def camera_pose(camera) -> Tuple[np.ndarray, float]:
    """(camera-to-world 4x4 in OpenCV axes, vertical field of view) of a scene camera."""
    w2c = camera.world_view_transform.detach().cpu().double().numpy().T
    return np.linalg.inv(w2c), float(camera.FoVy)


def default_render_width(device: torch.device) -> int:
    """Render width when none is asked for: 960 with a GPU, 320 for the reference on a CPU."""
    return 960 if device.type == "cuda" else 320


def render_size(aspect: float, max_width: int) -> Tuple[int, int]:
    """(width, height) of a frame for a canvas of this aspect (width / height), at most max_width wide."""
    width = max(16, int(max_width))
    return width, max(16, int(round(width / max(aspect, 1e-3))))


# ---------------------------------------------------------------- frames

@dataclass
class LayerSettings:
    layer: str = "full"
    hand_rule: str = "threshold"
    hand_threshold: float = 0.5
    hand_percentile: float = 85.0


class LiveModel:
    """A trained model ready to draw any layer from any pose at any time; safe to call from
    several threads (one frame at a time) and to point at a model that is still training."""

    def __init__(self, gaussians, deform, pipe, background: torch.Tensor, is_6dof: bool,
                 deform_on: Callable[[], bool], gate: Callable[[], Optional[torch.Tensor]]):
        self.gaussians, self.deform, self.pipe = gaussians, deform, pipe
        self.background, self.is_6dof = background, is_6dof
        self.deform_on, self.gate = deform_on, gate   # callables: training changes both
        self.lock = threading.Lock()

    @property
    def device(self) -> torch.device:
        return self.gaussians.get_xyz.device

    def split(self, settings: LayerSettings) -> Decomposition:
        """The decomposition the settings ask for (the gate rule uses the model's motion gate)."""
        return decompose_model(self.gaussians, Namespace(**vars(settings)), self.gate())

    def hands(self, settings: LayerSettings) -> torch.Tensor:
        return self.split(settings).hands

    def frame(self, camera: ViewerCamera, time_value: float, settings: LayerSettings) -> np.ndarray:
        """uint8 [H, W, 3] image of settings.layer seen by camera at time_value in [0, 1]."""
        if settings.layer not in LAYERS:
            raise ValueError(f"Unknown layer {settings.layer!r}: use one of {', '.join(LAYERS)}.")
        with self.lock, torch.no_grad():
            offsets = (0.0, 0.0, 0.0)
            if self.deform_on():
                fid = torch.tensor(float(time_value), device=self.device)
                offsets = self.deform.offsets(self.gaussians.get_xyz, fid, gate=self.gate())
            subset = weight = None
            if settings.layer in ("static", "hands"):
                subset, weight = self.split(settings).layer(settings.layer)
            out = render(camera, self.gaussians, self.pipe, self.background, *offsets,
                         is_6dof=self.is_6dof, gaussian_subset=subset, opacity_weight=weight)
            if settings.layer == "depth":
                image = depth_for_viewing(out["depth"], out["alpha"]).expand(3, -1, -1)
            elif settings.layer == "hand map":
                image = hand_map_image(out["hand_map"], out["alpha"]).expand(3, -1, -1)
            else:
                image = out["render"]
            return to_uint8(image)


def load_live_model(args: Namespace, model_params, pipeline_params, device: torch.device):
    """(LiveModel, scene, iteration) of the model folder args.model_path, as render.py loads it."""
    try:
        dataset, scene, gaussians, deform = load_model(args, model_params, device)
    except RenderError as err:
        raise ViewerError(str(err)) from err
    pipe = pipeline_params.extract(args)
    background = background_color(dataset.white_background, device)
    deform_on = deformation_active(args, scene.loaded_iter)
    gate = deformation_gate(gaussians, args)
    live = LiveModel(gaussians, deform, pipe, background, dataset.is_6dof, lambda: deform_on, lambda: gate)
    return live, scene, scene.loaded_iter


def named_cameras(scene) -> Dict[str, object]:
    """'train 00003' / 'test 00008' -> camera, in time order within each split."""
    cameras = {}
    for split, views in (("train", scene.getTrainCameras()), ("test", scene.getTestCameras())):
        for camera in sorted(views, key=lambda c: float(c.fid)):
            cameras[f"{split} {camera.image_name}"] = camera
    return cameras


def up_direction(cameras: List) -> np.ndarray:
    """The world's up for the orbit controls: the mean of the cameras' up (-y in OpenCV axes)."""
    if not cameras:
        return np.array([0.0, -1.0, 0.0])
    ups = [-camera_pose(c)[0][:3, 1] for c in cameras]
    mean = np.mean(ups, axis=0)
    return mean / max(np.linalg.norm(mean), 1e-9)


# ---------------------------------------------------------------- the page

class ViewerPage:
    """The viser server and one render loop for every connected browser.

    ``refresh()`` marks every browser's frame as out of date (train.py calls it as the model
    learns); a browser's frame is redrawn when its camera, time, layer or decomposition changes,
    while playing, and after refresh(). ``rendering_paused`` lets train.py skip work when nobody
    is watching."""

    def __init__(self, live: LiveModel, cameras: Dict[str, object], host: str, port: int, max_width: int,
                 frame_rate: float = 30.0, title: str = "EgoMask-GS", own_thread: bool = True,
                 min_frame_seconds: float = 0.0):
        import viser
        self.live, self.cameras, self.max_width = live, cameras, max_width
        self.server = viser.ViserServer(host=host, port=port, verbose=False)
        self.server.gui.configure_theme(titlebar_content=None, control_width="medium")
        self.server.scene.set_up_direction(tuple(up_direction(list(cameras.values()))))
        self.clients: Dict[int, "ClientState"] = {}
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self._build_gui(frame_rate, title)
        self.server.on_client_connect(self._connect)
        self.server.on_client_disconnect(lambda client: self.clients.pop(client.client_id, None))
        # own_thread: a render loop of its own (view.py). Without it the owner calls tick() between
        # its own steps (train.py), so no frame is drawn while the model is being changed.
        self.min_frame_seconds = min_frame_seconds
        self._last_tick = self._last_draw = time.perf_counter()
        self.thread = threading.Thread(target=self._loop, daemon=True) if own_thread else None
        if self.thread is not None:
            self.thread.start()

    # -- GUI (shared by every browser: one set of controls, one time, one layer) --------------
    def _build_gui(self, frame_rate: float, title: str) -> None:
        gui = self.server.gui
        gui.add_markdown(f"**{title}**")
        self.time = gui.add_slider("Time", min=0.0, max=1.0, step=0.001, initial_value=0.0)
        self.playing = gui.add_checkbox("Play", initial_value=False)
        self.frame_rate = gui.add_number("Frames per second", initial_value=frame_rate, min=1.0, max=120.0, step=1.0)
        self.frames = gui.add_number("Frames in the clip", initial_value=max(2, len(self.cameras)), min=2, step=1)
        names = ["free"] + list(self.cameras)
        self.snap = gui.add_dropdown("Camera", options=names, initial_value="free")
        self.go_to = gui.add_button("Back to this camera")   # after flying away from it
        self.follow = gui.add_checkbox("Follow the camera's time", initial_value=True)
        self.layer = gui.add_dropdown("Layer", options=LAYERS, initial_value="full")
        self.rule = gui.add_dropdown("Hand rule", options=HAND_RULES, initial_value="threshold")
        self.threshold = gui.add_slider("Hand threshold", min=0.0, max=1.0, step=0.01, initial_value=0.5)
        self.percentile = gui.add_slider("Hand percentile", min=0.0, max=100.0, step=0.5, initial_value=85.0)
        self.width = gui.add_slider("Render width", min=64, max=max(64, 4 * self.max_width), step=16,
                                    initial_value=self.max_width)
        self.stats = gui.add_markdown("")
        for control in (self.time, self.layer, self.rule, self.threshold, self.percentile, self.width):
            control.on_update(lambda _: self.refresh())
        self.snap.on_update(lambda _: self._snap_all())
        self.go_to.on_click(lambda _: self._snap_all())

    def settings(self) -> LayerSettings:
        return LayerSettings(self.layer.value, self.rule.value, float(self.threshold.value), float(self.percentile.value))

    # -- browsers -----------------------------------------------------------------------
    def _connect(self, client) -> None:
        state = ClientState(client)
        with self.lock:
            self.clients[client.client_id] = state
        client.camera.on_update(lambda _: state.moved())
        if self.snap.value != "free":
            self._snap(state)
        elif self.cameras:   # start at the first camera, not at viser's default origin
            self._snap(state, next(iter(self.cameras.values())))

    def _snap_all(self) -> None:
        for state in list(self.clients.values()):
            self._snap(state)

    def _snap(self, state: "ClientState", camera=None) -> None:
        """Ask for the browser's camera to jump to a scene camera (applied by the render loop
        once the browser has reported its own camera: before that viser cannot move it)."""
        camera = camera or self.cameras.get(self.snap.value)
        if camera is not None:
            state.pending_snap = camera
            state.dirty = True

    def _apply_snap(self, state: "ClientState") -> None:
        camera, state.pending_snap = state.pending_snap, None
        c2w, fov_y = camera_pose(camera)
        with state.client.atomic():
            state.client.camera.position = c2w[:3, 3]
            state.client.camera.wxyz = rotation_to_wxyz(c2w[:3, :3])
            state.client.camera.fov = fov_y
        if self.follow.value and self.snap.value != "free":
            self.time.value = float(camera.fid)

    def refresh(self) -> None:
        for state in list(self.clients.values()):
            state.dirty = True

    @property
    def port(self) -> int:
        """The port served: viser moves to the next free one when the one asked for is taken."""
        return int(self.server.get_port())

    @property
    def watched(self) -> bool:
        return bool(self.clients)

    # -- rendering -------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self.stop_event.is_set():
            if not self.tick():
                time.sleep(0.01)

    def tick(self) -> bool:
        """Advance the time while playing and draw every browser whose frame is out of date (at
        most one frame per min_frame_seconds). Returns whether anything was drawn. Cheap when no
        browser is connected: train.py calls it after every step."""
        if not self.clients:
            return False
        now = time.perf_counter()
        if self.playing.value:
            step = (now - self._last_tick) * float(self.frame_rate.value) / max(float(self.frames.value) - 1.0, 1.0)
            self.time.value = (float(self.time.value) + step) % 1.0
            self.refresh()
        self._last_tick = now
        if now - self._last_draw < self.min_frame_seconds:
            return False
        drew = False
        for state in list(self.clients.values()):
            if state.dirty:
                state.dirty = False
                self.draw(state, state.scale)
                drew = True
            elif state.scale < 1.0 and not state.refined and now - state.changed_at > REFINE_AFTER_SECONDS:
                self.draw(state, 1.0)   # the view is still: the full width, once
                state.refined = True
                drew = True
        if drew:
            self._last_draw = now
        return drew

    def draw(self, state: "ClientState", scale: float = 1.0) -> None:
        """One frame for one browser at scale x the render width; a frame drawn while the view
        changes adapts the client's scale to TARGET_FRAME_SECONDS."""
        camera = state.client.camera
        try:
            if state.pending_snap is not None:
                self._apply_snap(state)
            c2w = np.eye(4)
            c2w[:3, :3], c2w[:3, 3] = wxyz_to_rotation(camera.wxyz), camera.position
            width, height = render_size(camera.aspect, int(self.width.value * scale))
            view = ViewerCamera.from_pose(c2w, camera.fov, width, height, self.live.device)
            start = time.perf_counter()
            image = self.live.frame(view, float(self.time.value), self.settings())
            if self.live.device.type == "cuda":
                torch.cuda.synchronize(self.live.device)
            seconds = time.perf_counter() - start
            ms = seconds * 1000.0
            state.client.scene.set_background_image(image, format="jpeg", jpeg_quality=90)
            if scale == state.scale:
                state.adapt_scale(seconds)
        except AssertionError:   # the browser has not sent its camera yet
            state.dirty = True
            time.sleep(0.02)
            return
        state.frames_drawn += 1
        gaussians = int(self.live.gaussians.get_xyz.shape[0])
        self.stats.content = (f"{gaussians:,} Gaussians · {width}×{height} · {ms:.1f} ms per frame "
                              f"({1000.0 / max(ms, 1e-3):.0f} fps) · {self.live.device.type}")

    def close(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
        self.server.stop()


class ClientState:
    def __init__(self, client):
        self.client = client
        self.dirty = True
        self.frames_drawn = 0
        self.pending_snap = None   # a scene camera to jump to once the browser's camera is known
        self.scale = 1.0           # share of the render width while the view changes
        self.refined = True        # the last frame was drawn at the full width
        self.changed_at = time.perf_counter()

    @property
    def dirty(self) -> bool:
        return self._dirty

    @dirty.setter
    def dirty(self, value: bool) -> None:
        """Setting it marks a change of view (camera, time, layer...): a full-width frame follows
        once the view has been still for a moment."""
        self._dirty = bool(value)
        if value:
            self.changed_at = time.perf_counter()
            self.refined = False

    def moved(self) -> None:
        self.dirty = True

    def adapt_scale(self, seconds: float) -> None:
        """Smaller frames when they were too slow, larger again when there is room (width ~ the
        square root of the time, since time ~ pixels)."""
        if seconds > TARGET_FRAME_SECONDS:
            self.scale = max(MIN_RENDER_SCALE, self.scale * max(0.5, (TARGET_FRAME_SECONDS / seconds) ** 0.5))
        elif seconds < 0.5 * TARGET_FRAME_SECONDS:
            self.scale = min(1.0, self.scale * 1.25)


# ---------------------------------------------------------------- command line

def require_viser() -> None:
    try:
        import viser  # noqa: F401
    except ImportError:
        raise ViewerError(f"The viewer needs the viser package, which is not installed: {INSTALL_HINT}") from None


def build_parser():
    parser = ArgumentParser(description="Serve a web viewer of a trained EgoMask model (viser).")
    model, pipeline = ModelParams(parser), PipelineParams(parser)
    parser.add_argument("--iteration", default=-1, type=int, help="saved iteration to show (-1: latest)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="0.0.0.0", help="0.0.0.0 serves every network interface")
    parser.add_argument("--max_width", type=int, default=None,
                        help="render width in pixels (default 960 with a GPU, 320 on the CPU); adjustable on the page")
    parser.add_argument("--frame_rate", type=float, default=30.0, help="frames per second when playing")
    parser.add_argument("--quiet", action="store_true")
    add_decomposition_args(parser)
    return parser, model, pipeline


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        require_viser()
        parser, model_params, pipeline_params = build_parser()
        given = parser.parse_args(argv)
        if not 1 <= given.port <= 65535:
            raise ViewerError(f"--port must be in 1..65535, got {given.port}.")
        if given.max_width is not None and given.max_width < 16:
            raise ViewerError(f"--max_width must be at least 16 pixels, got {given.max_width}.")
        if not given.frame_rate > 0:
            raise ViewerError(f"--frame_rate must be positive, got {given.frame_rate}.")
        args = resolve_args(argv, parser)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        set_cpu_threads(getattr(args, "cpu_threads", -1), device)   # as train.py
        live, scene, iteration = load_live_model(args, model_params, pipeline_params, device)
        max_width = args.max_width or default_render_width(device)
        try:
            page = ViewerPage(live, named_cameras(scene), args.host, args.port, max_width, args.frame_rate,
                              title=f"{os.path.basename(os.path.normpath(args.model_path))} · iteration {iteration}")
        except OSError as err:
            raise ViewerError(f"Cannot serve on port {args.port} ({err.strerror or err}): pass another --port.") from err
    except (ViewerError, RenderError, DatasetError, OSError) as err:
        print(f"Error: {' '.join(str(err).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    moved = f" (port {args.port} was taken)" if page.port != args.port else ""
    print(f"Viewer of {args.model_path} (iteration {iteration}, {live.gaussians.get_xyz.shape[0]} Gaussians) at "
          f"http://localhost:{page.port}{moved} — Ctrl-C to stop.")
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        page.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
