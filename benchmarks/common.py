"""Small pieces the benchmark scripts share: the device's name and the `-- flags` split."""
from typing import List, Tuple


def device_name() -> str:
    """The GPU's name, "cpu" without one, "unknown" without PyTorch."""
    try:
        import torch
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "unknown"


def split_common_flags(argv: List[str]) -> Tuple[List[str], List[str]]:
    """(the script's own arguments, the train.py flags after a lone "--")."""
    if "--" not in argv:
        return list(argv), []
    cut = argv.index("--")
    return list(argv[:cut]), list(argv[cut + 1:])


def parse_named(text: str, what: str, allow_empty_value: bool = True) -> Tuple[str, str]:
    """NAME=VALUE of a repeatable option (--recipe, --variant, --scene); exits with a clear line."""
    name, sep, value = text.partition("=")
    if not name or not sep or (not value and not allow_empty_value):
        raise SystemExit(f"{what} {text!r}: write NAME=VALUE.")
    return name, value
