"""What a model folder (train.py's -m) holds from an earlier run, and clearing it for --overwrite.

A run writes its folder only after its inputs were validated, so a failing run leaves an existing
model as it was; a folder that already holds results is only written with --start_checkpoint
(resume) or --overwrite (replace).
"""
import glob
import os
import re
import shutil
from typing import List

# Everything train.py, render.py and metrics.py write, by the name it has in the folder.
RESULT_FOLDERS = ("point_cloud", "deform", "train", "test")
# (cfg_args.json is not among them: the new run has just replaced it, atomically)
RESULT_FILES = ("cameras.json", "input.ply", "results*.json", "per_view*.json", "chkpnt*.pth",
                "events.out.tfevents.*")


def trained_outputs(model_path: str) -> List[str]:
    """Names of an earlier run's results in model_path (sorted), empty when there are none.
    A folder holding only cfg_args.json / cameras.json / input.ply (a run that never trained) has none."""
    if not os.path.isdir(model_path):
        return []
    found = [name for name in RESULT_FOLDERS if os.path.isdir(os.path.join(model_path, name))]
    found += [os.path.basename(p) for p in glob.glob(os.path.join(model_path, "chkpnt*.pth"))]
    return sorted(found)


def latest_checkpoint(model_path: str) -> str:
    """The chkpnt<N>.pth with the highest N in model_path, or '' when there is none."""
    numbered = []
    for path in glob.glob(os.path.join(model_path, "chkpnt*.pth")):
        match = re.fullmatch(r"chkpnt(\d+)\.pth", os.path.basename(path))
        if match:
            numbered.append((int(match.group(1)), path))
    return max(numbered)[1] if numbered else ""


def clear_outputs(model_path: str) -> None:
    """Remove an earlier run's results from model_path (--overwrite); other files stay."""
    for name in RESULT_FOLDERS:
        shutil.rmtree(os.path.join(model_path, name), ignore_errors=True)
    for pattern in RESULT_FILES:
        for path in glob.glob(os.path.join(model_path, pattern)):
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)
