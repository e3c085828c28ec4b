"""Process-level helpers: one-time notices and the iteration_N folders of a model."""
import os
import re
from typing import List

_printed_notices = set()  # each notice is printed once per process


def print_once(message: str) -> None:
    if message not in _printed_notices:
        _printed_notices.add(message)
        print(message)


def saved_iterations(folder: str, required_file: str) -> List[int]:
    """Sorted N of every ``folder/iteration_N`` holding ``required_file`` (numeric: 10000 > 9000)."""
    if not os.path.isdir(folder):
        return []
    found = (re.fullmatch(r"iteration_(\d+)", name) for name in os.listdir(folder))
    return sorted(int(m.group(1)) for m in found
                  if m and os.path.isfile(os.path.join(folder, m.group(0), required_file)))
