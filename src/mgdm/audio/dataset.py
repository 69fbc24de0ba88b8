"""The synthetic four-stem data set: splits by seed range, WAV folders and one tensor file.

**Splits.** Example ``i`` of a split is rendered from the seed ``SPLIT_FIRST_SEED[split] + i``;
the seed ranges of the splits are disjoint blocks of :data:`SPLIT_SIZE` seeds, so train,
validation and test never share a song.

**Files** written by :func:`write_dataset` (``mgdm audio-data``) under ``OUT``:

* ``OUT/<split>/<index>/{bass,drums,guitar,piano,mix}.wav`` (6-digit index, 32-bit float WAV,
  mono; ``mix`` is the sum of the stems, bit for bit);
* ``OUT/<split>.safetensors``: ``stems`` float32 ``[N, 4, L]`` (:data:`STEMS` order) and its
  metadata (:class:`StemData`), read by :func:`load_stem_tensor` and the trainer.

Each file is written to a temporary name and moved into place, so a killed run leaves whole
files only.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor
from tqdm.auto import tqdm

from mgdm.audio.constants import STEMS
from mgdm.audio.synth import GENERATOR_VERSION, SynthConfig, fluidsynth_problem, generate_example
from mgdm.audio.wav import write_wav
from mgdm.files import atomic_path, check_output_dir

SPLIT_SIZE = 1_000_000
"""Seeds per split."""

SPLIT_FIRST_SEED: dict[str, int] = {"train": 0, "validation": SPLIT_SIZE, "test": 2 * SPLIT_SIZE}
"""First seed of each split."""

DATA_KIND = "mgdm-audio-stems"
_TENSOR_KEY = "stems"


@dataclass(frozen=True)
class StemData:
    """A stem tensor and where it came from.

    Attributes:
        stems: float32 ``[N, S, L]``.
        names: the ``S`` stem names, in tensor order.
        sample_rate: Hz.
        split: the split the examples belong to.
        first_seed: seed of example 0 (example ``i`` has seed ``first_seed + i``).
        generator_version: :data:`mgdm.audio.synth.GENERATOR_VERSION` of the renderer.
        soundfont: file name of the soundfont.
    """

    stems: Tensor
    names: tuple[str, ...]
    sample_rate: int
    split: str
    first_seed: int
    generator_version: int
    soundfont: str

    def fingerprint(self) -> dict[str, object]:
        """What identifies the data (no tensor): saved with a training run to check resumes."""
        count, _, length = self.stems.shape
        return {
            "split": self.split,
            "first_seed": self.first_seed,
            "count": count,
            "length": length,
            "sample_rate": self.sample_rate,
            "stems": list(self.names),
            "generator_version": self.generator_version,
            "soundfont": self.soundfont,
        }


def split_seed(split: str, index: int) -> int:
    """The seed of example ``index`` of ``split``; ``ValueError`` outside the split's range."""
    if split not in SPLIT_FIRST_SEED:
        raise ValueError(f"unknown split {split!r}; accepted: {', '.join(SPLIT_FIRST_SEED)}.")
    if not 0 <= index < SPLIT_SIZE:
        raise ValueError(f"a split holds examples 0 … {SPLIT_SIZE - 1}; got index {index}.")
    return SPLIT_FIRST_SEED[split] + index


def write_dataset(
    out: Path | str,
    split: str,
    count: int,
    first: int = 0,
    config: SynthConfig | None = None,
    wav: bool = True,
    progress: bool = True,
) -> Path:
    """Render examples ``first … first + count - 1`` of ``split`` into ``out``; returns the
    tensor file ``out/<split>.safetensors`` (which holds exactly these examples).

    Raises ``ValueError`` before writing anything when fluidsynth or the soundfont is missing
    (saying what to install), for a count or range outside the split, and for an ``out`` that
    cannot be created or written. Folders are created only as the first example is written
    (or, with ``wav=False``, the tensor file): a run that fails earlier leaves nothing behind.
    """
    config = config or SynthConfig()
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"--count must be a positive integer; got {count!r}.")
    split_seed(split, first)
    last_seed = split_seed(split, first + count - 1)
    problem = fluidsynth_problem(config.soundfont)
    if problem is not None:
        raise ValueError(f"cannot render audio: {problem}")
    out = check_output_dir(out, "--out")
    examples = torch.empty(count, len(STEMS), config.length, dtype=torch.float32)
    seeds = range(last_seed - count + 1, last_seed + 1)
    for i, seed in enumerate(
        tqdm(seeds, desc=f"audio {split}", unit="example", disable=not progress)
    ):
        examples[i] = generate_example(seed, config)
        if wav:
            _write_example(out / split / f"{first + i:06d}", examples[i], config.sample_rate)
    data = StemData(
        examples,
        STEMS,
        config.sample_rate,
        split,
        seeds[0],
        GENERATOR_VERSION,
        config.soundfont.name,
    )
    path = out / f"{split}.safetensors"
    save_stem_tensor(path, data)
    return path


def _write_example(folder: Path, stems: Tensor, sample_rate: int) -> None:
    """The stem WAVs and ``mix.wav`` of one example, written to a temporary folder then moved."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, stem in zip(STEMS, stems):
        write_wav(tmp / f"{name}.wav", stem, sample_rate)
    write_wav(tmp / "mix.wav", stems.sum(0), sample_rate)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def save_stem_tensor(path: Path | str, data: StemData) -> None:
    """Write ``data`` as one safetensors file (tensor ``stems``, the rest as metadata), atomically
    (:func:`mgdm.files.atomic_path`: the parent folders are created)."""
    metadata = {"kind": DATA_KIND, **{k: json.dumps(v) for k, v in data.fingerprint().items()}}
    with atomic_path(path) as tmp:
        save_file({_TENSOR_KEY: data.stems.contiguous()}, str(tmp), metadata=metadata)


def load_stem_tensor(path: Path | str) -> StemData:
    """Read a file written by :func:`save_stem_tensor`; ``ValueError`` says what is wrong (a
    missing or unreadable file, metadata of the wrong types, a stems tensor that is not
    floating-point ``[N >= 1, S, L >= 1]`` with finite samples)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"the stem file {path} does not exist; write one with "
            "`mgdm audio-data --out DIR --split train --count N` (DIR/train.safetensors)."
        )
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            names = handle.keys()  # safe_open has no __contains__
            if metadata.get("kind") != DATA_KIND or _TENSOR_KEY not in names:
                raise ValueError(f"{path} is not a stem file of `mgdm audio-data`.")
            stems = handle.get_tensor(_TENSOR_KEY)
        fields = {
            k: json.loads(metadata[k])
            for k in (
                "split",
                "first_seed",
                "sample_rate",
                "stems",
                "generator_version",
                "soundfont",
            )
        }
    except (OSError, KeyError, json.JSONDecodeError, SafetensorError) as error:
        raise ValueError(
            f"{path} is not a readable stem file of `mgdm audio-data`: {error}"
        ) from None
    _check_stem_file(path, stems, fields)
    return StemData(
        stems.to(torch.float32),
        tuple(fields["stems"]),
        fields["sample_rate"],
        fields["split"],
        fields["first_seed"],
        fields["generator_version"],
        fields["soundfont"],
    )


def _check_stem_file(path: Path, stems: Tensor, fields: dict[str, Any]) -> None:
    """``ValueError`` unless the metadata ``fields`` and the tensor ``stems`` of the stem file
    ``path`` have the types and shapes of :class:`StemData`."""
    names = fields["stems"]
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise ValueError(f"{path}: the metadata 'stems' must list the stem names; got {names!r}.")
    for key, least in (("sample_rate", 1), ("first_seed", 0), ("generator_version", 0)):
        value = fields[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(
                f"{path}: the metadata {key!r} must be a whole number >= {least}; got {value!r}."
            )
    for key in ("split", "soundfont"):
        if not isinstance(fields[key], str):
            raise ValueError(  # noqa: TRY004 - a malformed file is bad input (exit status 2)
                f"{path}: the metadata {key!r} must be a string; got {fields[key]!r}."
            )
    if not stems.is_floating_point():
        raise ValueError(
            f"{path}: the stems tensor holds {stems.dtype}; expected floating-point samples in "
            "full-scale units."
        )
    if stems.dim() != 3 or stems.shape[1] != len(names) or 0 in stems.shape:
        raise ValueError(
            f"{path}: the stems tensor has shape {list(stems.shape)}; expected "
            f"[N, {len(names)}, L] with N, L >= 1."
        )
    if not bool(torch.isfinite(stems).all()):
        raise ValueError(f"{path}: the stems tensor has non-finite samples (NaN or inf).")
