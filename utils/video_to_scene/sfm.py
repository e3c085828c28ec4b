"""Structure-from-motion for convert.py: COLMAP's stages through pycolmap (or a COLMAP binary),
keyframe pairs and hand feature masks, focal-length self-calibration, choosing the largest model,
undistortion maps for per-frame priors, and similarity alignment of trajectories (evaluation).

Both backends write the same files (a COLMAP database, numbered sparse models, an undistorted
workspace), so convert.py drives them through one interface.
"""
import os
import shutil
import subprocess
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from utils.errors import DatasetError

CAMERA_MODELS = ("OPENCV", "SIMPLE_RADIAL", "PINHOLE")
MATCHERS = ("sequential", "exhaustive")
MAPPERS = ("global", "incremental")


def import_pycolmap():
    """pycolmap, imported on first use so a missing install is one clear error."""
    try:
        import pycolmap
    except ImportError as err:
        raise DatasetError("pycolmap is not installed: run `pip install -r requirements.txt` "
                           "(or pass --colmap_executable PATH to use a COLMAP binary).") from err
    return pycolmap


class PycolmapBackend:
    """COLMAP through its Python bindings, on the CPU, with a fixed seed and thread count."""

    name = "pycolmap"

    def __init__(self, num_threads: int = -1, seed: int = 0, verbose: bool = False):
        self.pycolmap = import_pycolmap()
        self.num_threads = num_threads
        self.seed = seed
        self.pycolmap.logging.minloglevel = 0 if verbose else 3  # convert.py reports failures itself
        self.pycolmap.set_random_seed(seed)

    def extract_features(self, database: str, image_dir: str, names: List[str], camera_model: str,
                         mask_dir: Optional[str] = None) -> None:
        pc = self.pycolmap
        reader = pc.ImageReaderOptions()
        reader.camera_model = camera_model
        if mask_dir is not None:
            reader.mask_path = mask_dir
        extraction = pc.FeatureExtractionOptions()
        extraction.num_threads = self.num_threads
        extraction.use_gpu = False
        # One camera for the whole video: its intrinsics are shared by all frames.
        pc.extract_features(database, image_dir, image_names=names, camera_mode=pc.CameraMode.SINGLE,
                            reader_options=reader, extraction_options=extraction, device=pc.Device.cpu)

    def match(self, database: str, matcher: str) -> None:
        pc = self.pycolmap
        matching = pc.FeatureMatchingOptions()
        matching.num_threads = self.num_threads
        matching.use_gpu = False
        verification = pc.TwoViewGeometryOptions()
        verification.ransac.random_seed = self.seed
        if matcher == "sequential":
            pc.match_sequential(database, matching_options=matching, verification_options=verification,
                                device=pc.Device.cpu)
        elif matcher == "exhaustive":
            pc.match_exhaustive(database, matching_options=matching, verification_options=verification,
                                device=pc.Device.cpu)
        else:  # a pairs file, one "name1 name2" per line
            pairing = pc.ImportedPairingOptions()
            pairing.match_list_path = matcher
            pc.match_image_pairs(database, matching_options=matching, pairing_options=pairing,
                                 verification_options=verification, device=pc.Device.cpu)

    def calibrate(self, database: str) -> None:
        """Focal length from the fundamental matrices of the view graph (COLMAP's advice before
        global mapping when frames carry no focal length, as video frames do)."""
        options = self.pycolmap.ViewGraphCalibrationOptions()
        options.random_seed = self.seed
        self.pycolmap.calibrate_view_graph(database, options)

    def map(self, database: str, image_dir: str, out_dir: str, mapper: str) -> None:
        pc = self.pycolmap
        if mapper == "global":
            options = pc.GlobalPipelineOptions()
            options.mapper.random_seed = self.seed
            options.mapper.num_threads = self.num_threads
            options.mapper.global_positioning.use_gpu = False
            options.mapper.bundle_adjustment.ceres.use_gpu = False
            run = pc.global_mapping
        else:
            options = pc.IncrementalPipelineOptions()
            options.mapper.random_seed = self.seed
            options.mapper.num_threads = self.num_threads
            run = pc.incremental_mapping
        options.num_threads = self.num_threads
        options.random_seed = self.seed
        run(database, image_dir, out_dir, options)

    def undistort(self, image_dir: str, model_dir: str, out_dir: str) -> None:
        self.pycolmap.undistort_images(out_dir, model_dir, image_dir, output_type="COLMAP",
                                       num_threads=self.num_threads)


class ColmapCliBackend:
    """The same stages through a COLMAP command-line binary (``--colmap_executable``)."""

    name = "colmap executable"

    def __init__(self, executable: str, num_threads: int = -1, verbose: bool = False):
        resolved = shutil.which(executable)
        if resolved is None:
            raise DatasetError(f"COLMAP executable {executable!r} not found or not executable: give its "
                               "full path to --colmap_executable, or drop the flag to use pycolmap.")
        self.executable = resolved
        self.verbose = verbose

    def _run(self, command: str, *args: str) -> None:
        argv = [self.executable, command, *args]
        result = subprocess.run(argv, stdout=None if self.verbose else subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            tail = "" if result.stdout is None else " ".join(result.stdout.strip().splitlines()[-3:])
            hint = (" Your COLMAP may predate the global mapper (COLMAP 4): pass --mapper incremental."
                    if command == "global_mapper" else "")
            raise DatasetError(f"`{' '.join(argv)}` failed with status {result.returncode}: {tail}.{hint}")

    def extract_features(self, database: str, image_dir: str, names: List[str], camera_model: str,
                         mask_dir: Optional[str] = None) -> None:
        masks = [] if mask_dir is None else ["--ImageReader.mask_path", mask_dir]
        self._run("feature_extractor", "--database_path", database, "--image_path", image_dir,
                  "--ImageReader.single_camera", "1", "--ImageReader.camera_model", camera_model, *masks)

    def match(self, database: str, matcher: str) -> None:
        if matcher in MATCHERS:
            self._run(f"{matcher}_matcher", "--database_path", database)
        else:  # a pairs file
            self._run("matches_importer", "--database_path", database, "--match_list_path", matcher,
                      "--match_type", "pairs")

    def calibrate(self, database: str) -> None:
        self._run("view_graph_calibrator", "--database_path", database)

    def map(self, database: str, image_dir: str, out_dir: str, mapper: str) -> None:
        command = "global_mapper" if mapper == "global" else "mapper"
        self._run(command, "--database_path", database, "--image_path", image_dir, "--output_path", out_dir)

    def undistort(self, image_dir: str, model_dir: str, out_dir: str) -> None:
        self._run("image_undistorter", "--image_path", image_dir, "--input_path", model_dir,
                  "--output_path", out_dir, "--output_type", "COLMAP")


# ----------------------------------------------------------------------------- pairs and masks

def keyframe_pairs(names: List[str], keyframes: int = 20) -> List[Tuple[str, str]]:
    """All pairs among ``keyframes`` frames spread evenly over the clip.

    Sequential matching only pairs nearby frames, whose small baselines make nearly every pair
    look planar; the global mapper's focal-length calibration needs the wider baselines these
    pairs add (and they tie the two ends of the clip together)."""
    if len(names) <= 2:
        return []
    picks = sorted(set(np.linspace(0, len(names) - 1, min(keyframes, len(names))).round().astype(int)))
    return [(names[a], names[b]) for i, a in enumerate(picks) for b in picks[i + 1:]]


def feature_mask(hand: np.ndarray, margin: int = 3) -> np.ndarray:
    """COLMAP feature mask [H, W] uint8 from a hand mask [H, W] (non-zero = hand): 0 = no features
    on the hands, grown by ``margin`` pixels so descriptors straddling a hand's edge go too; 255
    elsewhere. Moving hands break SfM's static-scene assumption and would pull the poses."""
    if hand.ndim == 3:
        hand = hand.max(axis=2)
    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    grown = cv2.dilate((hand > hand.max() / 2 if hand.max() > 0 else hand > 0).astype(np.uint8), kernel)
    return ((1 - grown) * 255).astype(np.uint8)


# ----------------------------------------------------------------------------- focal length

UNCALIBRATED_CONFIGS = (2, 3)  # TwoViewGeometry CALIBRATED / UNCALIBRATED: pairs with a fundamental matrix
MIN_PAIRS_FOR_FOCAL = 8


def self_calibration_cost(fundamentals: np.ndarray, focal: float, cx: float, cy: float) -> float:
    """Median over pairs of (s1 - s2) / (s1 + s2), s = singular values of E = K^T F K
    (Mendonca & Cipolla 1999): a true essential matrix has two equal ones. fundamentals: [P, 3, 3]."""
    K = np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])
    singular = np.linalg.svd(K.T @ fundamentals @ K, compute_uv=False)  # [P, 3]
    return float(np.median((singular[:, 0] - singular[:, 1]) / (singular[:, 0] + singular[:, 1])))


def estimate_focal(fundamentals: np.ndarray, width: int, height: int) -> float:
    """Focal length (pixels, principal point at the centre) minimizing ``self_calibration_cost``.

    A global search over fields of view from about 14 to 130 degrees, then a fine one around the
    best: COLMAP's own view-graph calibration starts from its guess (1.2 x the image size) and
    can stay in a local minimum there, depending on RANSAC's luck."""
    size, cx, cy = max(width, height), width / 2.0, height / 2.0
    coarse = np.geomspace(0.25 * size, 4.0 * size, 241)
    best = coarse[np.argmin([self_calibration_cost(fundamentals, f, cx, cy) for f in coarse])]
    fine = np.linspace(0.98 * best, 1.02 * best, 81)
    return float(fine[np.argmin([self_calibration_cost(fundamentals, f, cx, cy) for f in fine])])


def initialize_focal(database: str) -> Optional[float]:
    """Set the (single) camera's focal length in the database from its fundamental matrices and
    mark it as a prior; returns it, or None where there are too few pairs or several cameras."""
    pycolmap = import_pycolmap()
    db = pycolmap.Database.open(database)
    try:
        cameras = db.read_all_cameras()
        if len(cameras) != 1:
            return None
        _, geometries = db.read_two_view_geometries()
        fundamentals = np.array([g.F for g in geometries
                                 if int(g.config) in UNCALIBRATED_CONFIGS and np.abs(g.F).sum() > 0])
        if len(fundamentals) < MIN_PAIRS_FOR_FOCAL:
            return None
        camera = cameras[0]
        focal = estimate_focal(fundamentals, camera.width, camera.height)
        params = np.array(camera.params)
        params[list(camera.focal_length_idxs())] = focal
        camera.params = params
        camera.has_prior_focal_length = True
        db.update_camera(camera)
        return focal
    finally:
        db.close()


# ----------------------------------------------------------------------------- models

def read_reconstruction(model_dir: str):
    """A pycolmap.Reconstruction (binary or text files), or DatasetError naming the folder."""
    try:
        return import_pycolmap().Reconstruction(model_dir)
    except Exception as err:  # pycolmap raises ValueError/RuntimeError depending on the failure
        raise DatasetError(f"Cannot read the COLMAP model in {model_dir!r} ({err}): "
                           "re-run convert.py with --force.") from err


def model_sizes(sparse_dir: str) -> Dict[str, int]:
    """Registered frame count of each numbered model folder under ``sparse_dir``."""
    if not os.path.isdir(sparse_dir):
        return {}
    sizes = {}
    for entry in sorted(os.listdir(sparse_dir)):
        path = os.path.join(sparse_dir, entry)
        if entry.isdigit() and os.path.isdir(path) and os.listdir(path):
            sizes[entry] = read_reconstruction(path).num_reg_images()
    return sizes


def keep_largest_model(sparse_dir: str) -> Tuple[int, int]:
    """Make ``sparse_dir/0`` the model with most registered frames (swapping folders);
    returns (its registered count, number of models). (0, 0) when mapping made no model."""
    sizes = model_sizes(sparse_dir)
    if not sizes:
        return 0, 0
    best = max(sizes, key=lambda k: (sizes[k], -int(k)))
    if best != "0":
        zero, other = os.path.join(sparse_dir, "0"), os.path.join(sparse_dir, best)
        swap = os.path.join(sparse_dir, "_swap")
        if os.path.isdir(zero):
            os.rename(zero, swap)
        os.rename(other, zero)
        if os.path.isdir(swap):
            os.rename(swap, other)
    return sizes[best], len(sizes)


def focal_disagreement(camera) -> float:
    """max(fx, fy) / min(fx, fy) of a pycolmap camera (1.0 for one-focal models)."""
    fx, fy = camera.focal_length_x, camera.focal_length_y
    return max(fx, fy) / max(min(fx, fy), 1e-12)


# ----------------------------------------------------------------------------- undistortion

def undistortion_maps(distorted, undistorted) -> Tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps [H', W'] float32: for each pixel of the undistorted (pinhole) camera, where
    to sample the distorted frame. Both are pycolmap cameras; COLMAP pixel centres are at +0.5."""
    w, h = undistorted.width, undistorted.height
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    pixels = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], axis=1)        # [H'W', 2]
    rays = undistorted.cam_from_img(pixels)                                   # [H'W', 2] normalized
    rays = np.concatenate([rays, np.ones((rays.shape[0], 1))], axis=1)        # [H'W', 3]
    source = distorted.img_from_cam(rays, check_cheirality=False) - 0.5       # [H'W', 2] pixel index
    map_x = source[:, 0].reshape(h, w).astype(np.float32)
    map_y = source[:, 1].reshape(h, w).astype(np.float32)
    return map_x, map_y


def remap_prior(array: np.ndarray, maps: Tuple[np.ndarray, np.ndarray], nearest: bool) -> np.ndarray:
    """Warp one prior image [H, W] or [H, W, C] (any dtype) with ``undistortion_maps``.

    Masks use nearest neighbour (labels must not blend). Depth uses bilinear, falling back to the
    nearest sample where bilinear touches a non-finite value (e.g. inf = no surface)."""
    map_x, map_y = maps
    kwargs = dict(borderMode=cv2.BORDER_REPLICATE)
    near = cv2.remap(array, map_x, map_y, cv2.INTER_NEAREST, **kwargs)
    if nearest:
        return near
    linear = cv2.remap(array, map_x, map_y, cv2.INTER_LINEAR, **kwargs)
    if np.issubdtype(array.dtype, np.floating):
        linear = np.where(np.isfinite(linear), linear, near)
    return linear


# ----------------------------------------------------------------------------- evaluation

def umeyama_alignment(source: np.ndarray, target: np.ndarray) -> Tuple[float, np.ndarray, np.ndarray]:
    """Similarity (scale s, rotation R [3,3], translation t [3]) minimizing
    sum |s R source_i + t - target_i|^2 (Umeyama 1991). source, target: [N, 3], N >= 3."""
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    src, dst = source - mu_s, target - mu_t
    covariance = dst.T @ src / len(source)
    U, singular, Vt = np.linalg.svd(covariance)
    reflect = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:  # keep a proper rotation
        reflect[2, 2] = -1.0
    R = U @ reflect @ Vt
    variance = (src ** 2).sum() / len(source)
    scale = float(np.trace(np.diag(singular) @ reflect) / variance)
    t = mu_t - scale * R @ mu_s
    return scale, R, t


def apply_similarity(points: np.ndarray, scale: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """[N, 3] -> [N, 3]: s R p + t."""
    return scale * points @ R.T + t
