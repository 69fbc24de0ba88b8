"""Checkpoint I/O: reading state dicts and JSON configurations safely, checked loading, and
file hashes.

Weights are read from ``.safetensors`` files, or from torch files through
``torch.load(weights_only=True)``, which unpickles tensors and plain containers only: no code in
a user's file is ever executed. Every way a file can be unreadable (missing, truncated, corrupt,
a pickled object, not a mapping from names to tensors) becomes a one-line ``ValueError`` or
``FileNotFoundError`` that names the file and says what is accepted.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

SAFE_FORMATS = (
    "a .safetensors file, or a torch file of plain tensors, torch.save(model.state_dict())"
)


def read_state_dict(path: Path | str) -> dict[str, Tensor]:
    """A state dict ``{name: tensor}`` from a ``.safetensors`` or torch file, on the CPU.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file that cannot be
    read safely or does not hold a mapping from names to tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as error:
            raise ValueError(
                f"{path} is not a readable .safetensors file ({one_line(error)}); re-export it."
            ) from error
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path} cannot be loaded safely: it holds pickled Python objects besides tensors, and "
            f"mgdm never runs code from a file. In an environment you trust, save the model's state_dict() with "
            f"safetensors.torch.save_file and pass that file ({SAFE_FORMATS})."
        ) from error
    except Exception as error:  # truncated or corrupt archives raise many types
        raise ValueError(
            f"{path} is not a readable checkpoint ({one_line(error)}); expected {SAFE_FORMATS}."
        ) from error
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()
    ):
        raise ValueError(f"{path} does not hold a state dict (a mapping from names to tensors).")
    return dict(obj)


def read_json_object(path: Path | str, what: str = "configuration") -> dict[str, Any]:
    """The JSON object (a ``dict``) in ``path``; ``ValueError`` for unreadable text, invalid JSON
    or a value that is not an object, ``FileNotFoundError`` for a missing file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a readable JSON {what}: {one_line(error)}") from error
    if not isinstance(value, dict):
        raise ValueError(  # noqa: TRY004 - a malformed file is bad input (exit status 2)
            f"{path} holds a JSON {type(value).__name__}; a {what} is a JSON object {{...}}."
        )
    return value


def load_state_dict_checked(
    module: nn.Module, state_dict: Mapping[str, Tensor], source: str, shown: int = 5
) -> None:
    """``module.load_state_dict(state_dict)`` after checking names and shapes.

    Raises a ``ValueError`` naming ``source``, the missing keys, the unexpected keys and the
    first ``shown`` shape mismatches (``key: checkpoint shape vs model shape``).
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k}: checkpoint {list(state_dict[k].shape)} vs model {list(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mismatched:

        def listing(keys: list[str]) -> str:
            more = f" … (+{len(keys) - shown} more)" if len(keys) > shown else ""
            return ", ".join(keys[:shown]) + more if keys else "none"

        raise ValueError(
            f"{source} does not fit {type(module).__name__}: {len(missing)} missing keys "
            f"[{listing(missing)}]; {len(unexpected)} unexpected keys [{listing(unexpected)}]; "
            f"{len(mismatched)} shape mismatches [{listing(mismatched)}]."
        )
    module.load_state_dict(state_dict)


def file_sha256(path: Path | str) -> str:
    """The hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def one_line(error: BaseException | str) -> str:
    """An exception's message (or a text) with its line breaks and runs of spaces folded."""
    return " ".join(str(error).split())
