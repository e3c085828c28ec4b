"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

The content goes to a temporary file beside the target (same file system, so the final
``os.replace`` is atomic; named by process and thread, so concurrent writers do not meet), which
is removed again if writing fails (a full disk, an interruption). The parent folder is created.
Every file the project writes into a model or scene folder goes through here.
"""
import json
import os
import threading
from typing import Any, Callable


def write_atomically(path: str, write: Callable[[str], None]) -> str:
    """Call write(temporary_path), then move the result to path. Returns path."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = f"{path}.tmp{os.getpid()}_{threading.get_ident()}"
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def write_json_atomic(path: str, value: Any, indent: int = 2, **dump_options) -> str:
    """JSON of value at path, atomically; dump_options go to json.dump (sort_keys, default, ...)."""
    def write(temporary: str) -> None:
        with open(temporary, "w") as f:
            json.dump(value, f, indent=indent, **dump_options)
    return write_atomically(path, write)
