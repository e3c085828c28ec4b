"""``read_scene(args)``: the one place that decides which dataset layout a folder holds."""
import os

from scene.readers.blender import read_blender_scene
from scene.readers.dataset_types import DatasetError, SceneInfo
from scene.readers.egomask import read_egomask_scene
from scene.readers.nerfies import read_nerfies_scene

# (marker inside the source folder, layout name, reader), checked in this order as upstream.
LAYOUTS = (
    ("sparse", "EgoMask/COLMAP", read_egomask_scene),
    ("transforms_train.json", "Blender/D-NeRF", read_blender_scene),
    ("dataset.json", "Nerfies/HyperNeRF/NeRF-DS", read_nerfies_scene),
)


def detect_layout(source_path: str) -> str:
    """The layout name of the scene folder; DatasetError if missing or unrecognized."""
    return _detect(source_path)[0]


def read_scene(args) -> SceneInfo:
    """Read the scene in ``args.source_path`` (``args``: the extracted ModelParams group)."""
    _, reader = _detect(args.source_path)
    return reader(args)


def _detect(source_path: str):
    if not source_path:
        raise DatasetError("No scene folder given: pass it with -s/--source_path.")
    if not os.path.isdir(source_path):
        raise DatasetError(f"Scene folder {source_path} does not exist (or is not a folder). Check -s/--source_path.")
    for marker, name, reader in LAYOUTS:
        if os.path.exists(os.path.join(source_path, marker)):
            return name, reader
    looked_for = "; ".join(f"{marker} ({name})" for marker, name, _ in LAYOUTS)
    raise DatasetError(f"Could not recognize the scene layout of {source_path}: looked for {looked_for}. "
                       "Point -s at a scene folder (run COLMAP first for a video, e.g. `python convert.py -s SCENE`).")
