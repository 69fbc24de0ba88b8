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
from collections.abc import Callable, Mapping
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
    module: nn.Module,
    state_dict: Mapping[str, Tensor],
    source: str,
    shown: int = 5,
    assign: bool = False,
) -> None:
    """``module.load_state_dict(state_dict, assign=assign)`` after checking names and shapes.

    Raises a ``ValueError`` naming ``source``, the missing keys, the unexpected keys and the
    first ``shown`` shape mismatches (``key: checkpoint shape vs model shape``). With
    ``assign`` the module's tensors become the state dict's (a module built on the meta device
    is then filled without ever being initialised; see :func:`build_from_state_dict`).
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
        raise ValueError(
            mismatch_message(source, type(module).__name__, missing, unexpected, mismatched, shown)
        )
    module.load_state_dict(state_dict, assign=assign)


def build_from_state_dict(
    factory: Callable[[], nn.Module], state_dict: Mapping[str, Tensor], source: str
) -> nn.Module:
    """``factory()`` built on the meta device and given the tensors of ``state_dict`` (floating
    tensors as float32) after :func:`load_state_dict_checked`'s check: a large model is checked
    before any memory is spent on it, and its weights are never randomly initialised first.
    ``ValueError`` if the model has tensors that the state dict does not provide (buffers
    outside it)."""
    with torch.device("meta"):
        module = factory()
    state = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    load_state_dict_checked(module, state, source, assign=True)
    unset = [name for name, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if unset:
        raise ValueError(f"{source} leaves {type(module).__name__} tensors unset: {unset[:5]}.")
    return module


def mismatch_message(
    source: str,
    model: str,
    missing: list[str],
    unexpected: list[str],
    mismatched: list[str],
    shown: int = 5,
) -> str:
    """The one line of :func:`load_state_dict_checked`: ``source`` does not fit the class
    ``model``, with the counts and the first ``shown`` keys of each kind."""

    def listing(keys: list[str]) -> str:
        more = f" … (+{len(keys) - shown} more)" if len(keys) > shown else ""
        return ", ".join(keys[:shown]) + more if keys else "none"

    return (
        f"{source} does not fit {model}: {len(missing)} missing keys [{listing(missing)}]; "
        f"{len(unexpected)} unexpected keys [{listing(unexpected)}]; {len(mismatched)} shape "
        f"mismatches [{listing(mismatched)}]."
    )


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


# --------------------------------------------------------------------------- training checkpoints
LIGHTNING_GLOBAL_MODULES = (
    "pytorch_lightning",
    "lightning",
    "lightning_fabric",
    "omegaconf",
    "audio_diffusion_pytorch",
)
"""Packages whose classes a PyTorch Lightning checkpoint pickles besides its weights: callback
classes as keys of ``callbacks`` (Lightning < 1.5: ``ModelCheckpoint``, ``EarlyStopping``),
``AttributeDict`` and omegaconf containers in ``hyper_parameters``, and objects the model took
as arguments (MSDM's ``audio_diffusion_pytorch.LogNormalDistribution``)."""

LIGHTNING_GLOBAL_NAMES = (
    "typing.Any",
    "pathlib.PosixPath",
    "pathlib.WindowsPath",
    "numpy.dtype",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
)
"""Other globals seen in such metadata (omegaconf's type annotations, checkpoint paths, metric
values stored as numpy scalars)."""

_DICT_GLOBALS = (
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "lightning.fabric.utilities.data.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict",
)
"""``dict`` subclasses, rebuilt as plain dictionaries."""

CONVERT_HINT = "mgdm convert-checkpoint --trust-pickle IN OUT.safetensors"


class InertGlobal:
    """What an allow-listed global of a training checkpoint becomes when it is read: an object
    that stores the arguments and state it is given and does nothing else. Nothing of the
    checkpoint's own classes is imported or run."""

    def __init__(self, *args: object, **kwargs: object):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: object) -> None:
        self.state = state


def allowed_training_global(name: str) -> bool:
    """Whether the pickled global ``name`` (``module.qualname``) is on the allow-list of
    :func:`read_training_state_dict` (:data:`LIGHTNING_GLOBAL_MODULES`,
    :data:`LIGHTNING_GLOBAL_NAMES`)."""
    module = name.split(".", 1)[0]
    return module in LIGHTNING_GLOBAL_MODULES or name in LIGHTNING_GLOBAL_NAMES


def _checkpoint_state(obj: object, path: Path) -> dict[str, Tensor]:
    """The weights of a loaded checkpoint object: its ``state_dict`` entry (a Lightning
    checkpoint) or the object itself (a plain state dict)."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()
    ):
        raise ValueError(
            f"{path} holds neither a state dict (names to tensors) nor a training checkpoint "
            "with a 'state_dict' entry."
        )
    return dict(obj)


def read_training_state_dict(path: Path | str) -> dict[str, Tensor]:
    """The weights of a ``.safetensors`` file, a torch state dict, or a training checkpoint (a
    dict whose ``state_dict`` entry holds the weights, as PyTorch Lightning writes it).

    Read with ``torch.load(weights_only=True)``; the globals that a Lightning checkpoint pickles
    besides tensors are allowed only if :func:`allowed_training_global` accepts their names,
    and then each is replaced by :class:`InertGlobal` (``dict`` for ``AttributeDict``): no code
    from the file runs. Any other global is a ``ValueError`` naming it, with the conversion
    command (:data:`CONVERT_HINT`) to run where the file is trusted.
    """
    path = Path(path)
    if path.suffix == ".safetensors" or not path.is_file():
        return read_state_dict(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        obj = _load_with_allowed_globals(path, error)
    except Exception as error:  # truncated or corrupt archives raise many types
        raise ValueError(
            f"{path} is not a readable checkpoint ({one_line(error)}); expected {SAFE_FORMATS}, "
            "or a training checkpoint with a 'state_dict' entry."
        ) from error
    return _checkpoint_state(obj, path)


def _unpickler_reason(error: BaseException) -> str:
    """The part of torch's weights-only refusal that says what was wrong (one line)."""
    text = one_line(error)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split(" Check the documentation")[0]
    return text.strip()


def _load_with_allowed_globals(path: Path, first: pickle.UnpicklingError) -> object:
    """The second reading of :func:`read_training_state_dict`, after ``first`` refused."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as error:  # not a torch archive: garbage, or a legacy (non-zip) pickle
        raise ValueError(
            f"{path} is not a readable checkpoint ({_unpickler_reason(first)}); expected {SAFE_FORMATS}, "
            f"or a training checkpoint (a legacy pickle you trust: `{CONVERT_HINT}`)."
        ) from error
    refused = [name for name in names if not allowed_training_global(name)]
    if refused:
        raise ValueError(
            f"{path} pickles objects outside the allow-list of training checkpoints "
            f"({', '.join(refused[:5])}{' …' if len(refused) > 5 else ''}); mgdm never runs code "
            f"from a file: where you trust it, run `{CONVERT_HINT}` and pass the .safetensors file."
        )
    stand_ins = [(dict if name in _DICT_GLOBALS else InertGlobal, name) for name in names]
    try:
        with torch.serialization.safe_globals(stand_ins):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path} cannot be read without running its pickled objects ({one_line(error)}); "
            f"where you trust the file, run `{CONVERT_HINT}`."
        ) from error


def convert_checkpoint(source: Path | str, target: Path | str, trust_pickle: bool = False) -> int:
    """Write the weights of ``source`` (any file :func:`read_training_state_dict` reads, or with
    ``trust_pickle`` any torch checkpoint, unpickled with ``weights_only=False``: this runs code
    from the file) to the ``.safetensors`` file ``target``, atomically; returns the tensor count.

    Tensors sharing storage (as MSDM's ``unet`` and ``diffusion.net``) are written as copies.
    """
    from safetensors.torch import save_file

    from mgdm.files import write_atomically

    source, target = Path(source), Path(target)
    if target.suffix != ".safetensors":
        raise ValueError(f"the converted file must end in .safetensors; got {target}.")
    if not trust_pickle:
        state = read_training_state_dict(source)
    else:
        if not source.is_file():
            raise FileNotFoundError(f"checkpoint not found: {source}")
        try:
            obj = torch.load(source, map_location="cpu", weights_only=False)
        except ModuleNotFoundError as error:
            raise ValueError(
                f"{source} pickles objects of the package {error.name!r}, which is not installed "
                f"here; install it to convert the file."
            ) from error
        except Exception as error:  # corrupt files and failing unpickling code raise anything
            raise ValueError(f"{source} could not be unpickled ({one_line(error)}).") from error
        state = _checkpoint_state(obj, source)
    tensors = {name: value.detach().clone().contiguous() for name, value in state.items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(target, lambda tmp: save_file(tensors, str(tmp)))
    return len(tensors)
