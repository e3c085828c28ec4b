"""Scene: reads a dataset once, builds its cameras, and saves/loads the Gaussians of a model folder."""
import os
from typing import List, Optional

import numpy as np

from scene.deform_model import DeformModel
from scene.gaussian_model import GaussianModel
from scene.readers import read_scene
from scene.readers.camera_loading import camera_to_json, cameras_from_infos
from scene.readers.dataset_types import SceneInfo
from utils.atomic import write_atomically, write_json_atomic
from utils.graphics_utils import BasicPointCloud
from utils.system_utils import print_once, saved_iterations

# As in the 3DGS codebases: from scene import Scene, GaussianModel (and DeformModel).
__all__ = ["Scene", "GaussianModel", "DeformModel", "write_point_cloud_ply"]

PLY_FILE = "point_cloud.ply"


def write_point_cloud_ply(path: str, pcd: BasicPointCloud) -> None:
    """The initial point cloud as a standard PLY (x, y, z, nx, ny, nz, red, green, blue)."""
    from plyfile import PlyData, PlyElement

    dtype = [(k, "f4") for k in ("x", "y", "z", "nx", "ny", "nz")] + [(k, "u1") for k in ("red", "green", "blue")]
    rows = np.empty(len(pcd.points), dtype=dtype)
    for i, k in enumerate(("x", "y", "z")):
        rows[k] = pcd.points[:, i]
        rows["n" + k] = pcd.normals[:, i]
    for i, k in enumerate(("red", "green", "blue")):
        rows[k] = np.clip(np.round(pcd.colors[:, i] * 255), 0, 255)
    write_atomically(path, PlyData([PlyElement.describe(rows, "vertex")]).write)


class Scene:
    """Cameras of one dataset at the chosen resolution, plus the Gaussians' save/load.

    ``load_iteration``: None = a fresh model from the dataset's point cloud; -1 = the latest saved
    iteration of ``args.model_path``; N = that iteration (a clear error if it does not exist).
    Cameras are kept in time order; training picks them at random anyway.
    """

    def __init__(self, args, gaussians, load_iteration: Optional[int] = None):
        self.model_path = args.model_path
        self.gaussians = gaussians
        self.loaded_iter = self._resolve_iteration(load_iteration)

        scene_info: SceneInfo = read_scene(args)
        for notice in scene_info.notices:
            print_once(notice)
        self.scene_info = scene_info
        self.has_masks = scene_info.has_masks and not getattr(args, "no_masks", False)
        self.has_depth = scene_info.has_depth and not getattr(args, "no_depth", False)
        self.cameras_extent = scene_info.nerf_normalization["radius"]

        by_time = lambda infos: sorted(infos, key=lambda c: (c.fid, c.image_name))
        self.train_cameras = cameras_from_infos(by_time(scene_info.train_cameras), args.resolution, args.data_device)
        self.test_cameras = cameras_from_infos(by_time(scene_info.test_cameras), args.resolution, args.data_device)

        if self.loaded_iter is not None:
            gaussians.load_ply(self.point_cloud_path(self.loaded_iter))
        else:
            if scene_info.point_cloud is None:
                raise ValueError(f"The dataset at {args.source_path!r} gave no initial point cloud.")
            gaussians.create_from_pcd(scene_info.point_cloud, self.cameras_extent)

    def save_inputs(self) -> None:
        """input.ply (the initial points) and cameras.json into the model folder, atomically.
        Not done on construction: train.py writes its folder only once every input was read."""
        os.makedirs(self.model_path, exist_ok=True)
        if self.scene_info.point_cloud is not None:
            write_point_cloud_ply(os.path.join(self.model_path, "input.ply"), self.scene_info.point_cloud)
        all_infos = self.scene_info.train_cameras + self.scene_info.test_cameras
        write_json_atomic(os.path.join(self.model_path, "cameras.json"),
                          [camera_to_json(i, info) for i, info in enumerate(all_infos)], indent=None)

    def _resolve_iteration(self, load_iteration: Optional[int]) -> Optional[int]:
        if load_iteration is None:
            return None
        folder = os.path.join(self.model_path, "point_cloud")
        found = saved_iterations(folder, PLY_FILE)
        if not found:
            raise FileNotFoundError(f"No trained model in {folder!r} (expected point_cloud/iteration_N/): "
                                    "train one with train.py -m, or check the -m path.")
        if load_iteration == -1:
            return found[-1]
        if load_iteration not in found:
            raise FileNotFoundError(f"No iteration {load_iteration} in {folder!r}; saved iterations: {found}.")
        return load_iteration

    def point_cloud_path(self, iteration: int) -> str:
        return os.path.join(self.model_path, "point_cloud", f"iteration_{iteration}", PLY_FILE)

    def save(self, iteration: int) -> None:
        path = self.point_cloud_path(iteration)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.gaussians.save_ply(path)

    def getTrainCameras(self) -> List:
        return self.train_cameras

    def getTestCameras(self) -> List:
        return self.test_cameras
