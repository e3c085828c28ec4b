"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

The content goes to a temporary file in the same folder (same file system, so the final
``os.replace`` is atomic), which is removed again if writing fails.
"""
import json
import os
import tempfile
from typing import Any, Callable


def write_atomically(path: str, write: Callable[[str], None]) -> str:
    """Call write(temporary_path), then move the result to path. Returns path."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def write_json_atomic(path: str, value: Any, indent: int = 2) -> str:
    def write(temporary: str) -> None:
        with open(temporary, "w") as f:
            json.dump(value, f, indent=indent)
    return write_atomically(path, write)
