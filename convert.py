"""From a folder of frames or a video to a trainable scene, with no COLMAP install.

    python convert.py -s SCENE [--video FILE --fps F] [--camera OPENCV|SIMPLE_RADIAL|PINHOLE]
                      [--matcher sequential|exhaustive] [--mapper global|incremental] [--resize]
                      [--skip_matching] [--colmap_executable PATH] [--force]

Stages (each skipped on a re-run when its inputs and options did not change, unless --force):
  frames      --video FILE -> SCENE/input/00000.png ... (zero-padded: name order = time order)
  features    SIFT on the CPU into SCENE/distorted/database.db (one camera for all frames; none on
              the hands where SCENE/input_masks/ exists)
  matching    sequential (video; plus ~20 keyframes spread over the clip, all pairs) or exhaustive
  mapping     focal length from the fundamental matrices, then global (default) or incremental SfM
              -> SCENE/distorted/sparse/0 (the largest model)
  undistort   PINHOLE frames and model -> SCENE/images/, SCENE/sparse/0/
  priors      SCENE/input_masks/, SCENE/input_depth/ -> masks/, depth_gt/ with the same maps
  resize      --resize: images_2/4/8 (and masks_N/, depth_gt_N/)
COLMAP runs through pycolmap unless --colmap_executable names a COLMAP binary.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
import threading
import time
from typing import Callable, List, Optional

import cv2
import numpy as np
from tqdm import tqdm

from scene.readers.dataset_types import DatasetError
from utils.video_to_scene import sfm
from utils.video_to_scene.frames import check_frame_sizes, extract_video_frames, list_frames
from utils.atomic import write_json_atomic

MIN_REGISTERED = 3           # fewer registered frames cannot make a scene
MAPPER_FALLBACK_SHARE = 0.8   # below this share of frames registered, the other mapper is tried too
FOCAL_WARNING_RATIO = 1.25   # fx / fy beyond this means one image axis was poorly constrained
RESIZE_FACTORS = (2, 4, 8)
MASK_EXTENSIONS = (".png", ".jpg", ".jpeg")
DEPTH_SUFFIXES = ("_depth.png", ".png", ".npy")  # the names the EgoMask reader looks for
STATE_FILE = "convert_state.json"


# ----------------------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Camera poses for a video or a folder of frames (COLMAP via pycolmap).")
    parser.add_argument("-s", "--source_path", required=True, help="scene folder; frames in SOURCE/input/")
    parser.add_argument("--video", default=None, help="video file to cut into SOURCE/input/ first")
    parser.add_argument("--fps", type=float, default=None, help="frames per second kept from --video (default: all)")
    parser.add_argument("--camera", default="OPENCV", help="camera model: " + ", ".join(sfm.CAMERA_MODELS))
    parser.add_argument("--matcher", default="sequential", choices=sfm.MATCHERS)
    parser.add_argument("--mapper", default="global", choices=sfm.MAPPERS)
    parser.add_argument("--frames_only", action="store_true",
                        help="stop after cutting --video into SOURCE/input/ (make masks/priors from those frames)")
    parser.add_argument("--resize", action="store_true", help="also write images_2/4/8 (and masks/priors)")
    parser.add_argument("--skip_matching", action="store_true",
                        help="reuse SOURCE/distorted/sparse/0 (no features, matching or mapping)")
    parser.add_argument("--colmap_executable", default=None, help="use this COLMAP binary instead of pycolmap")
    parser.add_argument("--num_threads", type=int, default=-1, help="COLMAP threads (-1: all cores)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of COLMAP's RANSAC and mappers")
    parser.add_argument("--force", action="store_true", help="redo every stage")
    parser.add_argument("--verbose", action="store_true", help="show COLMAP's own log")
    return parser


def validate(args: argparse.Namespace) -> None:
    args.camera = args.camera.upper()
    if args.camera not in sfm.CAMERA_MODELS:
        raise DatasetError(f"Unknown camera model {args.camera!r} (--camera): use OPENCV (phones, head-mounted "
                           "cameras), SIMPLE_RADIAL (one focal length, mild distortion) or PINHOLE "
                           "(frames already undistorted).")
    if args.video is None and (args.fps is not None or args.frames_only):
        raise DatasetError(f"{'--fps' if args.fps is not None else '--frames_only'} applies to --video only: "
                           "pass the video too, or drop the flag.")
    if not os.path.isdir(args.source_path):
        if args.video is None:
            raise DatasetError(f"Scene folder {args.source_path!r} does not exist: create it with the frames "
                               "in SCENE/input/, or pass --video FILE.")
        os.makedirs(args.source_path)


# ----------------------------------------------------------------------------- stage bookkeeping

class Stages:
    """Runs stages in order; a stage is skipped when its key (its options plus the previous
    stage's key) matches the one saved after its last successful run and its outputs exist."""

    def __init__(self, scene: str, names: List[str], force: bool):
        self.state_path = os.path.join(scene, "distorted", STATE_FILE)
        self.state = _load_json(self.state_path)
        self.completed_before = set(self.state)  # what earlier runs made (e.g. frames from a video)
        self.names = names
        self.previous_key = ""
        self.rerun_from_here = force

    def run(self, name: str, options: dict, outputs_exist: Callable[[], bool], action: Callable[[], None]) -> None:
        index = self.names.index(name) + 1
        key = hashlib.sha1(json.dumps([self.previous_key, options], sort_keys=True).encode()).hexdigest()
        label = f"[{index}/{len(self.names)}] {name}"
        if not self.rerun_from_here and self.state.get(name) == key and outputs_exist():
            print(f"{label}: done already (--force redoes it)", flush=True)
        else:
            self.rerun_from_here = True  # every later stage depends on this one's output
            print(f"{label} ...", flush=True)
            started = time.time()
            self.state.pop(name, None)
            with ElapsedTicker(label):
                action()
            self.state[name] = key
            _save_json(self.state_path, self.state)
            print(f"{label}: done in {time.time() - started:.1f} s", flush=True)
        self.previous_key = key


def say(message: str) -> None:
    """A line from inside a stage; on a terminal it first clears the ticker's line."""
    print(("\r\033[K" if sys.stdout.isatty() else "") + message, flush=True)


class ElapsedTicker:
    """Shows the running time of a long COLMAP call on a terminal (pycolmap releases the GIL,
    so a thread can tick while COLMAP works); silent when stderr is not a terminal."""

    def __init__(self, label: str):
        self.label = label
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._tick, daemon=True)

    def _tick(self) -> None:
        started = time.time()
        while not self.done.wait(1.0):
            sys.stderr.write(f"\r{self.label} ... {time.time() - started:.0f} s ")
            sys.stderr.flush()
        sys.stderr.write("\r\033[K")

    def __enter__(self):
        if sys.stderr.isatty():
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        if self.thread.is_alive():
            self.thread.join()


def _load_json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _save_json(path: str, data: dict) -> None:
    write_json_atomic(path, data, sort_keys=True)


def folder_fingerprint(folder: str, names: List[str]) -> list:
    """Names, sizes and modification times: changes when frames are added, removed or replaced."""
    fingerprint = []
    for name in names:
        stat = os.stat(os.path.join(folder, name))
        fingerprint.append([name, stat.st_size, int(stat.st_mtime)])
    return fingerprint


# ----------------------------------------------------------------------------- frames

def prepare_frames(args, stages: Stages) -> List[str]:
    """Frames in SCENE/input/, cut from --video first when given; returns their names."""
    input_dir = os.path.join(args.source_path, "input")
    if args.video is not None:
        video = os.path.abspath(args.video)
        if not os.path.isfile(video):
            raise DatasetError(f"Video {args.video!r} does not exist: check the path given to --video.")
        stat = os.stat(video)
        options = {"video": video, "size": stat.st_size, "mtime": int(stat.st_mtime), "fps": args.fps}

        def extract():
            _clear_frames_for_video(input_dir, extracted_before="frames" in stages.completed_before)
            with tqdm(desc="frames", unit="frame", leave=False) as bar:
                count = extract_video_frames(video, input_dir, args.fps,
                                             progress=lambda done, total: _advance(bar, done, total))
            say(f"  {count} frames from {args.video}" + (f" at {args.fps:g} fps" if args.fps else ""))
            if count > 400 and args.fps is None:
                say(f"  note: {count} frames is a lot for SfM and training; --fps 5 keeps 5 per second")

        stages.run("frames", options, lambda: os.path.isdir(input_dir) and bool(os.listdir(input_dir)), extract)
    names = _list_input_frames(args.source_path)
    check_frame_sizes(input_dir, names)
    return names


def _clear_frames_for_video(input_dir: str, extracted_before: bool) -> None:
    """Make room for frames of a (new) video, refusing to delete frames the user put there."""
    if not os.path.isdir(input_dir):
        return
    frames = [n for n in os.listdir(input_dir) if os.path.splitext(n)[1].lower() in (".png", ".jpg", ".jpeg")]
    if frames and not extracted_before:
        raise DatasetError(f"{input_dir!r} already holds {len(frames)} frames that convert.py did not extract: "
                           "drop --video to use them, or move them away to extract the video.")
    for name in frames:
        os.remove(os.path.join(input_dir, name))


def _advance(bar, done: int, total: int) -> None:
    if total > 0 and bar.total != total:
        bar.total = total
    bar.n = done
    bar.refresh()


def _list_input_frames(scene: str) -> List[str]:
    input_dir = os.path.join(scene, "input")
    try:
        names = list_frames(input_dir)
    except DatasetError:
        images_dir = os.path.join(scene, "images")
        if not os.path.isdir(input_dir) and os.path.isdir(images_dir) and os.listdir(images_dir):
            raise DatasetError(f"No frames in {input_dir!r}, but {images_dir!r} has files: convert.py reads "
                               "SCENE/input/ and writes SCENE/images/; move the frames to input/.") from None
        raise
    if len(names) < MIN_REGISTERED:
        raise DatasetError(f"Only {len(names)} frame(s) in {input_dir!r}: structure-from-motion needs at "
                           f"least {MIN_REGISTERED} (a few dozen in practice); add frames or raise --fps.")
    return names


# ----------------------------------------------------------------------------- COLMAP stages

def run_sfm(args, stages: Stages, backend, names: List[str]) -> None:
    scene = args.source_path
    input_dir = os.path.join(scene, "input")
    distorted = os.path.join(scene, "distorted")
    database = os.path.join(distorted, "database.db")
    sparse = os.path.join(distorted, "sparse")
    hand_dir = os.path.join(scene, "input_masks")
    mask_dir = os.path.join(distorted, "feature_masks") if os.path.isdir(hand_dir) else None
    os.makedirs(distorted, exist_ok=True)

    def features():
        _remove(database)
        if mask_dir is not None:
            write_feature_masks(input_dir, hand_dir, mask_dir, names)
        else:
            say("  note: no SCENE/input_masks/: features on moving hands can mislead SfM; hand masks "
                  "(white = hand, named like the frames) keep them out")
        _guard(f"feature extraction ({backend.name})",
               lambda: backend.extract_features(database, input_dir, names, args.camera, mask_dir))

    def matching():
        _guard("clearing earlier matches (or re-run with --force)", lambda: _clear_matches(database))
        _guard(f"{args.matcher} matching ({backend.name})", lambda: backend.match(database, args.matcher))
        if args.matcher == "sequential":
            pairs_file = os.path.join(distorted, "keyframe_pairs.txt")
            with open(pairs_file, "w") as f:
                f.writelines(f"{a} {b}\n" for a, b in sfm.keyframe_pairs(names))
            _guard(f"keyframe matching ({backend.name})", lambda: backend.match(database, pairs_file))

    def run_mapper(mapper: str) -> int:
        """One mapper into a fresh sparse/; the registered count of its largest model (0 if it failed)."""
        shutil.rmtree(sparse, ignore_errors=True)
        os.makedirs(sparse)
        try:
            if mapper == "global":
                _guard(f"focal calibration ({backend.name})", lambda: backend.calibrate(database))
            _guard(f"{mapper} mapping ({backend.name})", lambda: backend.map(database, input_dir, sparse, mapper))
        except DatasetError as err:
            say(f"  note: {err}")
        return sfm.keep_largest_model(sparse)[0]

    def mapping():
        try:
            focal = sfm.initialize_focal(database)
        except Exception as err:  # e.g. a database from another COLMAP version: map with COLMAP's guess
            focal = None
            say(f"  note: no focal length estimate ({err}); COLMAP starts from its own guess")
        if focal is not None:
            say(f"  focal length from the fundamental matrices: {focal:.1f} px")
        registered = run_mapper(args.mapper)
        if registered < MAPPER_FALLBACK_SHARE * len(names):
            keep_better_mapper(args.mapper, registered, run_mapper, sparse, len(names))
        report_registration(sparse, names, args)

    frames = folder_fingerprint(input_dir, names)
    hands = None if mask_dir is None else folder_fingerprint(hand_dir, sorted(os.listdir(hand_dir)))
    stages.run("features", {"frames": frames, "hands": hands, "camera": args.camera, "backend": backend.name},
               lambda: os.path.isfile(database), features)
    stages.run("matching", {"matcher": args.matcher, "seed": args.seed}, lambda: os.path.isfile(database), matching)
    stages.run("mapping", {"mapper": args.mapper, "seed": args.seed}, lambda: os.path.isdir(os.path.join(sparse, "0")), mapping)


def keep_better_mapper(first: str, registered: int, run_mapper: Callable[[str], int], sparse: str,
                       total: int) -> None:
    """The first mapper registered too few frames: run the other one and keep whichever model
    registered more (the first on a tie), saying so in one line."""
    other = "incremental" if first == "global" else "global"
    kept_first = sparse + "_" + first
    shutil.rmtree(kept_first, ignore_errors=True)
    os.rename(sparse, kept_first)
    registered_other = run_mapper(other)
    keep = other if registered_other > registered else first
    if keep == first:
        shutil.rmtree(sparse, ignore_errors=True)
        os.rename(kept_first, sparse)
    shutil.rmtree(kept_first, ignore_errors=True)
    say(f"  the {first} mapper registered {registered} of {total} frames, the {other} mapper "
        f"{registered_other}: keeping the {keep} model")


def write_feature_masks(frame_dir: str, hand_dir: str, mask_dir: str, names: List[str]) -> None:
    """No SIFT features on the hands: SCENE/input_masks/<stem> -> COLMAP masks <frame name>.png."""
    _remove(mask_dir)
    os.makedirs(mask_dir)
    size = check_frame_sizes(frame_dir, names[:1])
    for name in tqdm(names, desc="feature masks", unit="frame", leave=False):
        hand = _read_prior(_find_prior(hand_dir, os.path.splitext(name)[0], MASK_EXTENSIONS), size)
        path = os.path.join(mask_dir, name + ".png")
        if not cv2.imwrite(path, sfm.feature_mask(hand)):
            raise DatasetError(f"Cannot write {path!r}: check free disk space and permissions.")
    say(f"  hands masked out of feature extraction ({hand_dir})")


def report_registration(sparse: str, names: List[str], args) -> None:
    """Keep the largest model as sparse/0, say how many frames it holds, refuse too few."""
    total = len(names)
    registered, models = sfm.keep_largest_model(sparse)
    if registered < MIN_REGISTERED:
        raise DatasetError(
            f"Structure-from-motion registered {registered} of {total} frames (COLMAP's \"No good initial image "
            "pair\": no two frames share enough matched features seen from different enough viewpoints). "
            "Try: hand masks in SCENE/input_masks/ (white = hand; moving hands mislead SfM); a clip where the "
            "camera moves, not only turns; more frames (--fps) or --matcher exhaustive; "
            f"--mapper {'incremental' if args.mapper == 'global' else 'global'}; --camera SIMPLE_RADIAL; "
            "drop blurry or textureless frames. --verbose shows COLMAP's log.")
    which = f"the largest of {models} models" if models > 1 else "one model"
    say(f"  registered {registered} of {total} frames ({which})")
    model = sfm.read_reconstruction(os.path.join(sparse, "0"))
    if registered < total:
        kept = {model.image(i).name for i in model.reg_image_ids()}
        missing = [name for name in names if name not in kept]
        listed = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        say(f"  note: {len(missing)} frames were not registered and are left out of the scene ({listed})")
    camera = next(iter(model.cameras.values()))
    ratio = sfm.focal_disagreement(camera)
    if ratio > FOCAL_WARNING_RATIO:
        say(f"  WARNING: the recovered focal lengths disagree (fx={camera.focal_length_x:.1f}, "
              f"fy={camera.focal_length_y:.1f}): the camera motion constrained one image axis poorly and the "
              "poses are likely wrong. Re-run with --camera SIMPLE_RADIAL --force (one shared focal length).")


def _guard(what: str, call: Callable[[], None]) -> None:
    """COLMAP failures become one clear DatasetError."""
    try:
        call()
    except DatasetError:
        raise
    except Exception as err:  # pycolmap surfaces COLMAP's checks as RuntimeError/ValueError
        raise DatasetError(f"COLMAP {what} failed: {err}. Re-run with --verbose to see COLMAP's log.") from err


def _clear_matches(database: str) -> None:
    """Drop earlier matches so a new matcher does not add to them (features are kept)."""
    pycolmap = sfm.import_pycolmap()
    db = pycolmap.Database.open(database)
    try:
        db.clear_matches()
        db.clear_two_view_geometries()
    finally:
        db.close()


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


# ----------------------------------------------------------------------------- undistortion

def undistort(args, stages: Stages, backend) -> None:
    scene = args.source_path
    model_dir = os.path.join(scene, "distorted", "sparse", "0")
    if not os.path.isdir(model_dir):
        raise DatasetError(f"--skip_matching needs a COLMAP model in {model_dir!r}: run without "
                           "--skip_matching first (or put your model there).")
    images_dir, sparse_dir = os.path.join(scene, "images"), os.path.join(scene, "sparse", "0")
    model_files = sorted(os.listdir(model_dir))
    options = {"model": folder_fingerprint(model_dir, model_files)}

    def action():
        workspace = os.path.join(scene, "distorted", "undistorted")
        _remove(workspace)
        _guard(f"undistortion ({backend.name})",
               lambda: backend.undistort(os.path.join(scene, "input"), model_dir, workspace))
        _remove(images_dir)
        _remove(sparse_dir)
        os.replace(os.path.join(workspace, "images"), images_dir)
        os.makedirs(sparse_dir)
        for name in os.listdir(os.path.join(workspace, "sparse")):
            os.replace(os.path.join(workspace, "sparse", name), os.path.join(sparse_dir, name))
        shutil.rmtree(workspace)
        say(f"  {len(os.listdir(images_dir))} PINHOLE frames in {images_dir}, model in {sparse_dir}")

    stages.run("undistort", options, lambda: os.path.isdir(images_dir) and os.path.isdir(sparse_dir), action)


# ----------------------------------------------------------------------------- priors

def undistort_priors(args, stages: Stages) -> None:
    """input_masks/ -> masks/ and input_depth/ -> depth_gt/, warped like their frames."""
    scene = args.source_path
    jobs = [(os.path.join(scene, "input_masks"), os.path.join(scene, "masks"), True),
            (os.path.join(scene, "input_depth"), os.path.join(scene, "depth_gt"), False)]
    jobs = [job for job in jobs if os.path.isdir(job[0])]
    if not jobs:
        return
    fingerprints = {src: folder_fingerprint(src, sorted(os.listdir(src))) for src, _, _ in jobs}

    def action():
        distorted = sfm.read_reconstruction(os.path.join(scene, "distorted", "sparse", "0"))
        undistorted = sfm.read_reconstruction(os.path.join(scene, "sparse", "0"))
        maps = {cam_id: sfm.undistortion_maps(distorted.cameras[cam_id], camera)
                for cam_id, camera in undistorted.cameras.items()}
        frames = sorted((undistorted.image(i).name, undistorted.image(i).camera_id) for i in undistorted.reg_image_ids())
        for src, dst, is_mask in jobs:
            _remove(dst)
            os.makedirs(dst)
            for name, cam_id in tqdm(frames, desc=os.path.basename(dst), unit="frame", leave=False):
                stem = os.path.splitext(name)[0]
                source = _find_prior(src, stem, MASK_EXTENSIONS if is_mask else DEPTH_SUFFIXES)
                camera = distorted.cameras[cam_id]
                prior = _read_prior(source, (camera.width, camera.height))
                out_name = stem + ".png" if is_mask else os.path.basename(source)
                _write_prior(os.path.join(dst, out_name), sfm.remap_prior(prior, maps[cam_id], nearest=is_mask))
            say(f"  {len(frames)} {'masks' if is_mask else 'depth priors'} undistorted into {dst}")

    stages.run("priors", {"inputs": fingerprints},
               lambda: all(os.path.isdir(dst) for _, dst, _ in jobs), action)


def _find_prior(folder: str, stem: str, suffixes) -> str:
    for suffix in suffixes:
        path = os.path.join(folder, stem + suffix)
        if os.path.isfile(path):
            return path
    raise DatasetError(f"No prior for frame {stem!r} in {folder!r} (looked for {stem}{'|'.join(suffixes)}): "
                       "every registered frame needs one; add it or remove the folder.")


def _read_prior(path: str, size=None) -> np.ndarray:
    """A mask, depth or frame file as stored (any dtype); checked against its frame's (width, height)."""
    if path.endswith(".npy"):
        try:
            array = np.squeeze(np.load(path, allow_pickle=False)).astype(np.float32)
        except (OSError, ValueError) as err:
            raise DatasetError(f"Cannot read {path!r} ({err}): re-save it with numpy.save.") from None
    else:
        # cv2 directly (not utils.image_io.read_image): the warp must keep the file's dtype (16-bit depth).
        array = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if array is None:
            raise DatasetError(f"Cannot read {path!r}: it is corrupt or not an image; re-export it as PNG.")
    if size is not None and (array.shape[1], array.shape[0]) != tuple(size):
        raise DatasetError(f"{path!r} is {array.shape[1]}x{array.shape[0]} but its frame is {size[0]}x{size[1]}: "
                           "priors must be made from the frames in input/ at their full size.")
    return array


def _write_prior(path: str, array: np.ndarray) -> None:
    if path.endswith(".npy"):
        np.save(path, array)
    elif not cv2.imwrite(path, array):
        raise DatasetError(f"Cannot write {path!r}: check free disk space and permissions.")


# ----------------------------------------------------------------------------- resize

def resize_outputs(args, stages: Stages) -> None:
    scene = args.source_path
    folders = [(name, kind) for name, kind in (("images", "image"), ("masks", "mask"), ("depth_gt", "depth"))
               if os.path.isdir(os.path.join(scene, name))]

    def action():
        for folder, kind in folders:
            names = sorted(os.listdir(os.path.join(scene, folder)))
            for factor in RESIZE_FACTORS:
                out_dir = os.path.join(scene, f"{folder}_{factor}")
                _remove(out_dir)
                os.makedirs(out_dir)
                for name in tqdm(names, desc=f"{folder}_{factor}", unit="file", leave=False):
                    source = os.path.join(scene, folder, name)
                    array = _read_prior(source)
                    _write_prior(os.path.join(out_dir, name), shrink(array, factor, kind))
        written = [f"{folder}_{factor}" for folder, _ in folders for factor in RESIZE_FACTORS]
        say(f"  wrote {', '.join(written)}")

    stages.run("resize", {"factors": RESIZE_FACTORS, "folders": folders},
               lambda: all(os.path.isdir(os.path.join(scene, f"{f}_{n}")) for f, _ in folders for n in RESIZE_FACTORS),
               action)


def shrink(array: np.ndarray, factor: int, kind: str) -> np.ndarray:
    """Downscale by ``factor`` (size rounded as ImageMagick's -resize N%): area averaging for
    frames and depth, nearest neighbour for masks (labels must not blend)."""
    height, width = array.shape[:2]
    size = (max(1, int(width / factor + 0.5)), max(1, int(height / factor + 0.5)))
    if kind == "mask":
        return cv2.resize(array, size, interpolation=cv2.INTER_NEAREST_EXACT)
    small = cv2.resize(array, size, interpolation=cv2.INTER_AREA)
    if np.issubdtype(array.dtype, np.floating):  # inf (no surface) must not smear into neighbours
        small = np.where(np.isfinite(small), small, cv2.resize(array, size, interpolation=cv2.INTER_NEAREST_EXACT))
    return small


# ----------------------------------------------------------------------------- main

STAGE_NAMES = ["frames", "features", "matching", "mapping", "undistort", "priors", "resize"]


def convert(args: argparse.Namespace) -> None:
    validate(args)
    args.source_path = os.path.abspath(args.source_path)
    names_in_use = [n for n in STAGE_NAMES
                    if not (n == "frames" and args.video is None)
                    and not (n != "frames" and args.frames_only)
                    and not (n in ("features", "matching", "mapping") and args.skip_matching)
                    and not (n == "priors" and not _has_priors(args.source_path))
                    and not (n == "resize" and not args.resize)]
    stages = Stages(args.source_path, names_in_use, args.force)
    names = prepare_frames(args, stages)
    if args.frames_only:
        print(f"{len(names)} frames in {os.path.join(args.source_path, 'input')}; put hand masks in input_masks/ "
              "and depth priors in input_depth/ (same names), then run again without --frames_only")
        return
    if args.colmap_executable:
        backend = sfm.ColmapCliBackend(args.colmap_executable, args.num_threads, args.verbose)
    else:
        backend = sfm.PycolmapBackend(args.num_threads, args.seed, args.verbose)
    if not args.skip_matching:
        run_sfm(args, stages, backend, names)
    undistort(args, stages, backend)
    undistort_priors(args, stages)
    if args.resize:
        resize_outputs(args, stages)
    print(f"Scene ready: python train.py -s {args.source_path}")


def _has_priors(scene: str) -> bool:
    return any(os.path.isdir(os.path.join(scene, d)) for d in ("input_masks", "input_depth"))


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        convert(args)
    except DatasetError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
