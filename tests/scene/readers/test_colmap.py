"""COLMAP model I/O: round trips, conformance with the documented binary layout, bad files."""
import os
import struct

import numpy as np
import pytest

from scene.readers.colmap import (CAMERA_MODELS, ColmapCamera, ColmapImage, ColmapPoint3D, qvec2rotmat, read_cameras_binary,
                          read_images_binary, read_images_text, read_model, read_points3D_binary, rotmat2qvec,
                          write_model)
from scene.readers.dataset_types import DatasetError


def random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def example_model():
    rng = np.random.default_rng(1)
    cameras = {
        1: ColmapCamera(1, "PINHOLE", 8, 6, np.array([7.5, 7.0, 4.1, 2.9])),
        2: ColmapCamera(2, "SIMPLE_RADIAL", 640, 480, np.array([500.0, 320.0, 240.0, -0.01])),
        5: ColmapCamera(5, "THIN_PRISM_FISHEYE", 10, 20, rng.normal(size=12)),
    }
    images = {
        3: ColmapImage(3, rotmat2qvec(random_rotation(rng)), rng.normal(size=3), 1, "frame_1.png",
                       rng.uniform(0, 8, size=(3, 2)), np.array([10, -1, 11], dtype=np.int64)),
        7: ColmapImage(7, rotmat2qvec(random_rotation(rng)), rng.normal(size=3), 2, "sub/frame_2.jpg",
                       np.zeros((0, 2)), np.zeros(0, dtype=np.int64)),
    }
    points = {
        10: ColmapPoint3D(10, rng.normal(size=3), np.array([0, 128, 255], dtype=np.uint8), 0.25,
                          np.array([3], dtype=np.int32), np.array([0], dtype=np.int32)),
        11: ColmapPoint3D(11, rng.normal(size=3), np.array([1, 2, 3], dtype=np.uint8), 1.5,
                          np.array([3, 7], dtype=np.int32), np.array([2, 5], dtype=np.int32)),
        12: ColmapPoint3D(12, rng.normal(size=3), np.array([9, 9, 9], dtype=np.uint8), 0.0,
                          np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32)),
    }
    return cameras, images, points


def assert_models_equal(a, b):
    for records_a, records_b in zip(a, b):
        assert sorted(records_a) == sorted(records_b)
        for key in records_a:
            for field_a, field_b in zip(records_a[key], records_b[key]):
                if isinstance(field_a, np.ndarray):
                    np.testing.assert_array_equal(np.asarray(field_b).reshape(field_a.shape), field_a)
                else:
                    assert field_a == field_b


@pytest.mark.parametrize("ext", [".bin", ".txt"])
def test_round_trip_keeps_every_field(tmp_path, ext):
    model = example_model()
    write_model(str(tmp_path), *model, ext=ext)
    assert sorted(os.listdir(tmp_path)) == sorted(f"{n}{ext}" for n in ("cameras", "images", "points3D"))
    assert_models_equal(model, read_model(str(tmp_path)))


def test_text_and_binary_describe_the_same_model(tmp_path):
    write_model(str(tmp_path / "txt"), *example_model(), ext=".txt")
    from_text = read_model(str(tmp_path / "txt"))
    write_model(str(tmp_path / "bin"), *from_text, ext=".bin")
    assert_models_equal(from_text, read_model(str(tmp_path / "bin")))
    assert_models_equal(example_model(), read_model(str(tmp_path / "bin")))


def test_binary_files_follow_the_documented_layout(tmp_path):
    """Files packed by hand from the COLMAP documentation read back correctly."""
    cams = tmp_path / "cameras.bin"
    cams.write_bytes(struct.pack("<Q", 1) + struct.pack("<iiQQ", 4, 0, 8, 6) + struct.pack("<3d", 9.0, 4.0, 3.0))
    camera = read_cameras_binary(str(cams))[4]
    assert (camera.model, camera.width, camera.height) == ("SIMPLE_PINHOLE", 8, 6)
    np.testing.assert_array_equal(camera.params, [9.0, 4.0, 3.0])

    imgs = tmp_path / "images.bin"
    imgs.write_bytes(struct.pack("<Q", 1) + struct.pack("<i4d3di", 2, 1, 0, 0, 0, 0.5, 1.5, 2.5, 4) + b"a.png\x00"
                     + struct.pack("<Q", 2) + struct.pack("<ddq", 1.25, 2.5, 6) + struct.pack("<ddq", 3.0, 4.0, -1))
    image = read_images_binary(str(imgs))[2]
    assert (image.name, image.camera_id) == ("a.png", 4)
    np.testing.assert_array_equal(image.qvec, [1, 0, 0, 0])
    np.testing.assert_array_equal(image.tvec, [0.5, 1.5, 2.5])
    np.testing.assert_array_equal(image.xys, [[1.25, 2.5], [3.0, 4.0]])
    np.testing.assert_array_equal(image.point3D_ids, [6, -1])

    pts = tmp_path / "points3D.bin"
    pts.write_bytes(struct.pack("<Q", 1) + struct.pack("<Q3d3BdQ", 6, 1.0, 2.0, 3.0, 10, 20, 30, 0.75, 1)
                    + struct.pack("<ii", 2, 0))
    point = read_points3D_binary(str(pts))[6]
    np.testing.assert_array_equal(point.xyz, [1, 2, 3])
    np.testing.assert_array_equal(point.rgb, [10, 20, 30])
    assert point.error == 0.75
    assert point.image_ids.tolist() == [2] and point.point2D_idxs.tolist() == [0]


def test_model_ids_match_colmap():
    expected = ["SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "OPENCV_FISHEYE", "FULL_OPENCV",
                "FOV", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE", "THIN_PRISM_FISHEYE"]
    assert [name for name, _ in sorted(CAMERA_MODELS.items(), key=lambda item: item[1][0])] == expected
    assert [CAMERA_MODELS[name][0] for name in expected] == list(range(11))


def test_text_written_by_colmap_is_read(tmp_path):
    """COLMAP's own text output: comments, and an empty keypoint line for an image without points."""
    path = tmp_path / "images.txt"
    path.write_text("# Image list with two lines of data per image:\n"
                    "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
                    "# Number of images: 2, mean observations per image: 1\n"
                    "1 1 0 0 0 0.1 0.2 0.3 1 00001.png\n"
                    "\n"
                    "2 0.7071067811865476 0 0 0.7071067811865476 1 2 3 1 00002.png\n"
                    "5.5 6.5 -1 7 8 42\n")
    images = read_images_text(str(path))
    assert images[1].name == "00001.png" and len(images[1].xys) == 0
    assert images[2].point3D_ids.tolist() == [-1, 42]
    np.testing.assert_array_equal(images[2].xys, [[5.5, 6.5], [7, 8]])


def test_quaternion_conversions():
    rng = np.random.default_rng(0)
    quarter_turn_z = qvec2rotmat(np.array([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)]))
    np.testing.assert_allclose(quarter_turn_z, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    for _ in range(200):
        R = random_rotation(rng)
        q = rotmat2qvec(R)
        assert q[0] >= 0 and np.isclose(np.linalg.norm(q), 1)
        np.testing.assert_allclose(qvec2rotmat(q), R, atol=1e-10)
    half_turn_x = np.diag([1.0, -1.0, -1.0])  # trace -1: the branch that does not divide by w
    np.testing.assert_allclose(np.abs(rotmat2qvec(half_turn_x)), [0, 1, 0, 0], atol=1e-12)


@pytest.mark.parametrize("name", ["cameras", "images", "points3D"])
def test_truncated_binary_names_the_file(tmp_path, name):
    write_model(str(tmp_path), *example_model(), ext=".bin")
    path = tmp_path / f"{name}.bin"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DatasetError, match=rf"{name}\.bin is truncated or corrupt"):
        read_model(str(tmp_path))


def test_trailing_bytes_and_unknown_model_id_are_corrupt(tmp_path):
    write_model(str(tmp_path), *example_model(), ext=".bin")
    cams = tmp_path / "cameras.bin"
    good = cams.read_bytes()
    cams.write_bytes(good + b"\x00\x01")
    with pytest.raises(DatasetError, match="cameras.bin is corrupt: 2 unexpected bytes"):
        read_model(str(tmp_path))
    cams.write_bytes(struct.pack("<Q", 1) + struct.pack("<iiQQ", 1, 42, 8, 6))
    with pytest.raises(DatasetError, match="unknown camera model id 42"):
        read_model(str(tmp_path))


def test_bad_text_line_names_file_and_line(tmp_path):
    write_model(str(tmp_path), *example_model(), ext=".txt")
    (tmp_path / "cameras.txt").write_text("# comment\n1 PINHOLE 8 six 1 2 3 4\n")
    with pytest.raises(DatasetError, match=r"cameras\.txt, line 2"):
        read_model(str(tmp_path))
    (tmp_path / "cameras.txt").write_text("1 PINHOLE 8 6 1 2 3\n")
    with pytest.raises(DatasetError, match="PINHOLE takes 4 parameters"):
        read_model(str(tmp_path))


def test_incomplete_model_folder_lists_what_it_found(tmp_path):
    write_model(str(tmp_path), *example_model(), ext=".txt")
    os.remove(tmp_path / "points3D.txt")
    with pytest.raises(DatasetError, match=r"No COLMAP model in .*found: cameras\.txt, images\.txt"):
        read_model(str(tmp_path))
