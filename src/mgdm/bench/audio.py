"""The source-separation benchmark (``mgdm bench audio``): samplers x mixtures x seeds, one SQLite
row per cell: what a cell is, how it is computed and scored.

**Problem** (docs/algorithms/problems.md §1). For a held-out example with stems
``x = (x_1, …, x_S)`` ``[S, N]`` (:data:`~mgdm.audio.constants.STEMS` order), the observation is the noise-free mix
``y = A x = sum_s x_s`` ``[N]`` (:class:`~mgdm.operators.mixing.Mixing`); the samplers see the
Gaussian likelihood ``-||y - A x||^2 / (2 sigma_y^2)`` with ``sigma_y = 1e-4``
(:data:`~mgdm.audio.separate.AUDIO_SIGMA_Y`). ``y`` is cut into windows of the prior's length
``L`` exactly as ``mgdm separate`` does (half-window overlap, cross-faded back together:
:func:`~mgdm.audio.separate.split_windows`, :func:`~mgdm.audio.separate.overlap_add`); a clip of
at most ``L`` samples is one window (zero-padded). Window ``w`` of mixture ``i`` and run seed
``r`` is sampled with the seed ``derive_seed(name_key("audio"), name_key(algorithm), i, r, w)``: the sample does not depend
on the batch, and all MGDM variants (every ``R``, the independent-stems prior) share their random
numbers (common random numbers along the compute curve).

**Mixtures.** The first ``count`` examples of the data file that the metric can score: at least
one evaluation window holds two or more active stems (:mod:`mgdm.audio.metrics`).

**Samplers** (:func:`audio_variants`). MGDM's audio preset (:func:`~mgdm.audio.separate.
audio_mgdm_config`) once per Gibbs sweep count ``R`` (labels ``mgdm-R{R}``), the baselines with
their audio settings (:func:`~mgdm.audio.separate.audio_sampler`), MSDM's Dirac separator
(``msdm``), and ``mgdm-independent``: MGDM with the largest ``R`` on the product prior
``p(x) = prod_s p_s(x_s)`` of four single-stem priors (ISDM-style,
:class:`~mgdm.audio.prior.IndependentStemsPrior`; one call of it runs the four networks). With
``budget``, every sampler is rescaled by ``Sampler.with_budget`` to about that many network
calls per window. A sampler that cannot be built, rescaled or run on the mixing operator gets
``skipped`` rows saying why; skipped rows are planned again by every run (a fixed sampler then
fills them).

**Metric.** SI-SDRi per stem and their mean (:func:`~mgdm.audio.metrics.si_sdr_improvement`:
MSDM's 4 s windows with 2 s overlap, which become one window covering a clip of at most 4 s, the
Proposal of docs/algorithms/problems.md §1; windows with fewer than two active stems are
skipped).

**Database**: :mod:`mgdm.bench.audio_db`. **Table and compute curve**:
:mod:`mgdm.bench.audio_report`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mgdm.audio.constants import STEMS
from mgdm.audio.dataset import load_stem_tensor
from mgdm.audio.metrics import si_sdr_improvement
from mgdm.audio.prior import MODEL_FILE, PRIOR_FILE, IndependentStemsPrior, load_audio_prior
from mgdm.audio.separate import (
    AUDIO_SIGMA_Y,
    AudioDenoiser,
    audio_sampler,
    overlap_add,
    split_windows,
)
from mgdm.bench.audio_db import (
    AudioRow,
    check_audio_db,
    check_setting,
    insert_row,
    open_audio_db,
    stored_rows,
)
from mgdm.bench.runtime import (
    check_noise_and_budget,
    chunks,
    measure_peak_memory,
    progress_bar,
    reset_peak_memory,
    resolve_device,
)
from mgdm.bench.seeds import name_key, parse_seeds
from mgdm.bench.store import config_json, config_matches
from mgdm.checkpoints import file_sha256
from mgdm.likelihood import check_likelihood
from mgdm.operators.mixing import Mixing
from mgdm.operators.noise import GaussianNoise
from mgdm.problem import Problem
from mgdm.random import derive_seed
from mgdm.samplers.base import Sampler
from mgdm.samplers.mgdm import PRESETS, check_practical_fit
from mgdm.samplers.registry import parse_sampler_list

DEFAULT_SWEEPS: tuple[int, ...] = (1, 2, 4, 6)
"""Gibbs sweep counts of the MGDM variants: the compute curve."""

WINDOW_OVERLAP = 0.5
"""Overlap of the separation windows of a clip longer than the prior, as ``mgdm separate``."""

INDEPENDENT_LABEL = "mgdm-independent"

_SEED_STREAM = name_key("audio")


# ----------------------------------------------------------------------------- samplers
@dataclass(frozen=True)
class AudioVariant:
    """A sampler as it appears in the table: ``label`` (unique), registry ``name``, overrides of
    its audio settings, and whether it runs on the independent-stems prior."""

    label: str
    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    independent: bool = False

    def build(self) -> Sampler:
        """``audio_sampler(name, **overrides)``."""
        return audio_sampler(self.name, **self.overrides)


def audio_variants(
    samplers: str,
    mgdm_sweeps: Sequence[int],
    independent: bool,
    mgdm_likelihood: str = "plain",
    mgdm_preset: str = "audio",
    mgdm_fit: str = "variational",
) -> tuple[list[AudioVariant], list[str]]:
    """The variants of ``samplers`` (``"all"``: the audio samplers; or a comma list) and notes.

    ``mgdm`` becomes one variant ``mgdm-R{R}`` per ``R`` in ``mgdm_sweeps`` (the preset ``mgdm``
    when it is empty), plus ``mgdm-independent`` with the largest of those ``R`` when
    ``independent`` (a note says it is left out otherwise). With ``mgdm_likelihood``
    ``covariance-corrected`` (MGDM's potential ``N(y; A D_ell(x), sigma_y^2 I + (1 - abar_ell)
    A A^T)``, :mod:`mgdm.likelihood`) the MGDM labels carry ``-cc``: ``mgdm-cc-R{R}``,
    ``mgdm-independent-cc``. MGDM starts from ``mgdm_preset`` (:data:`mgdm.samplers.mgdm.PRESETS`;
    the ``audio`` preset by default); another preset's name goes into the labels:
    ``mgdm-default-R1``, ``mgdm-independent-default``. With ``mgdm_fit`` ``rto``
    (randomize-then-optimise, :mod:`mgdm.samplers.mgdm_rto`) the labels carry ``-rto``.
    """
    check_likelihood(mgdm_likelihood)
    check_practical_fit(mgdm_fit)
    if mgdm_preset not in PRESETS:
        raise ValueError(
            f"unknown MGDM preset {mgdm_preset!r}; accepted: {', '.join(sorted(PRESETS))}."
        )
    extra: dict[str, Any] = {}
    tag = ""
    if mgdm_preset != "audio":
        tag, extra["preset"] = f"-{mgdm_preset}", mgdm_preset
    if mgdm_likelihood != "plain":
        tag, extra["likelihood"] = f"{tag}-cc", mgdm_likelihood
    if mgdm_fit != "variational":
        tag, extra["fit"] = f"{tag}-{mgdm_fit}", mgdm_fit
    sweeps = list(dict.fromkeys(mgdm_sweeps))
    for sweep in sweeps:
        if isinstance(sweep, bool) or not isinstance(sweep, int) or sweep < 1:
            raise ValueError(f"Gibbs sweep counts must be integers >= 1; got {sweep!r}.")
    variants: list[AudioVariant] = []
    notes: list[str] = []
    for name in parse_sampler_list(samplers, domain="audio"):
        if name != "mgdm":
            variants.append(AudioVariant(name, name))
            continue
        if sweeps:
            variants += [
                AudioVariant(f"mgdm{tag}-R{r}", name, {"gibbs_sweeps": r, **extra}) for r in sweeps
            ]
        else:
            variants.append(AudioVariant(f"{name}{tag}", name, extra))
        overrides = {"gibbs_sweeps": max(sweeps), **extra} if sweeps else extra
        if independent:
            label = INDEPENDENT_LABEL + tag
            variants.append(AudioVariant(label, name, overrides, independent=True))
        else:
            notes.append(f"{INDEPENDENT_LABEL} left out: no --independent-prior given.")
    labels = [v.label for v in variants]
    if len(set(labels)) != len(labels):
        raise ValueError(f"sampler labels must be distinct; got {', '.join(labels)}.")
    return variants, notes


# ----------------------------------------------------------------------------- inputs
def prior_digest(folder: Path | str) -> str:
    """SHA-256 over the ``prior.json`` and ``model.safetensors`` files under ``folder`` (with
    their relative paths): what identifies a prior folder, single or independent stems."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.name in (PRIOR_FILE, MODEL_FILE)):
        digest.update(f"{path.relative_to(folder).as_posix()}:{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def load_priors(
    prior: Path | str, independent_prior: Path | str | None, device: torch.device
) -> dict[str, AudioDenoiser]:
    """``{"joint": the four-stem prior, "independent": the product prior}`` (the latter only
    with ``independent_prior``); ``ValueError`` when a folder holds the other kind."""
    joint = load_audio_prior(prior, device)
    if isinstance(joint, IndependentStemsPrior):
        raise ValueError(  # noqa: TRY004 - a wrong folder is an input error (one-line message)
            f"--prior {prior} holds single-stem priors; give it as --independent-prior and a "
            "four-stem prior (from `mgdm train audio-prior --stems all`) as --prior."
        )
    priors: dict[str, AudioDenoiser] = {"joint": joint}
    if independent_prior is not None:
        product = load_audio_prior(independent_prior, device)
        if not isinstance(product, IndependentStemsPrior):
            raise ValueError(
                f"--independent-prior {independent_prior} holds a prior of the stems "
                f"{list(product.stems)}; expected the subfolders {', '.join(STEMS)} each holding "
                "a single-stem prior."
            )
        priors["independent"] = product
    return priors


def check_data(names: Sequence[str], sample_rate: int, priors: dict[str, AudioDenoiser]) -> None:
    """``ValueError`` unless the data's stems are :data:`STEMS` and every prior's stems and rate
    are the data's."""
    if tuple(names) != STEMS:
        raise ValueError(f"the data holds the stems {list(names)}; expected {list(STEMS)}.")
    for kind, prior in priors.items():
        if tuple(prior.stems) != STEMS or prior.sample_rate != sample_rate:
            raise ValueError(
                f"the {kind} prior models {list(prior.stems)} at {prior.sample_rate} Hz; the data "
                f"holds {list(STEMS)} at {sample_rate} Hz."
            )


def select_mixtures(stems: Tensor, count: int, sample_rate: int) -> list[int]:
    """Indices of the first ``count`` examples of ``stems`` ``[N, S, L]`` that SI-SDRi can score
    (a window with at least two active stems); ``ValueError`` when there are fewer."""
    chosen: list[int] = []
    for index, example in enumerate(stems):
        if si_sdr_improvement(example, example, sample_rate).windows_kept:
            chosen.append(index)
            if len(chosen) == count:
                return chosen
    raise ValueError(
        f"the data holds {len(chosen)} scoreable mixtures (with two or more active stems) of "
        f"{stems.shape[0]}; --mixtures asks for {count}."
    )


# ----------------------------------------------------------------------------- running
@dataclass(frozen=True)
class Plan:
    """A variant ready to run: its sampler (``None``: skipped, ``reason`` says why) and its
    configuration as JSON."""

    sampler: Sampler | None
    config: str
    reason: str | None


def plan_variant(
    variant: AudioVariant, prior: AudioDenoiser, budget: float | None, sigma_y: float
) -> Plan:
    """Build, rescale to ``budget`` and check ``variant`` on the mixing operator of ``prior``."""
    try:
        sampler = variant.build()
    except ValueError as error:
        reason = f"its audio settings are invalid: {error}"
        return Plan(None, json.dumps(variant.overrides, sort_keys=True), reason)
    try:
        if budget is not None:
            sampler = sampler.with_budget(budget)
        num_stems, length = prior.sample_shape
        problem = Problem(Mixing(num_stems, length), torch.zeros(length), GaussianNoise(sigma_y))
        sampler.check_compatible(prior, problem)
    except ValueError as error:
        return Plan(None, config_json(sampler.config), str(error))
    return Plan(sampler, config_json(sampler.config), None)


def window_seeds(algorithm: str, mixture: int, seed: int, windows: int) -> list[int]:
    """The per-window sample seeds of one mixture (module docstring)."""
    return [
        derive_seed(_SEED_STREAM, name_key(algorithm), mixture, seed, w) for w in range(windows)
    ]


@dataclass(frozen=True)
class Separated:
    """The stems of a batch of mixtures and what they cost.

    Attributes:
        stems: float32 ``[b, S, N]``.
        nfe_forward, nfe_backward: network calls per mixture (all its windows).
        seconds: the sampler call's seconds divided by ``b``.
        peak_memory: ``(bytes, kind)``.
    """

    stems: Tensor
    nfe_forward: float
    nfe_backward: float
    seconds: float
    peak_memory: tuple[int, str]


def separate_batch(
    sampler: Sampler,
    prior: AudioDenoiser,
    mixes: Tensor,
    seeds: Callable[[int, int], list[int]],
    sigma_y: float,
    device: torch.device,
) -> Separated:
    """One sampler call on the ``b n`` windows of ``mixes`` ``[b, N]`` (``seeds(j, n)``: the
    seeds of the ``n`` windows of mixture ``j``), cross-faded back to ``[b, S, N]``."""
    num_stems, length = prior.sample_shape
    overlap = round(WINDOW_OVERLAP * length)
    windows = torch.stack([split_windows(mix, length, overlap) for mix in mixes])  # [b, n, L]
    count, per_mixture = windows.shape[:2]
    problem = Problem(
        Mixing(num_stems, length),
        windows.reshape(count * per_mixture, length).to(device),
        GaussianNoise(sigma_y),
    )
    reset_peak_memory(device)
    flat_seeds = [s for j in range(count) for s in seeds(j, per_mixture)]
    result = sampler.sample(prior, problem, flat_seeds, device=device)
    memory = measure_peak_memory(device)
    samples = result.samples.to("cpu", torch.float32).reshape(count, per_mixture, num_stems, length)
    stems = torch.stack([overlap_add(s, mixes.shape[-1], overlap) for s in samples])
    return Separated(
        stems,
        result.cost.nfe_forward * per_mixture,
        result.cost.nfe_backward * per_mixture,
        result.cost.seconds / count,
        memory,
    )


@dataclass(frozen=True)
class _Cells:
    """What the rows of one (variant, seed, budget) share."""

    variant: AudioVariant
    seed: int
    budget: float
    plan: Plan
    device: str

    def key(self, mixture: int) -> tuple[str, int, int, float]:
        """The database key of ``mixture``'s row."""
        return self.variant.label, mixture, self.seed, self.budget

    def row(self, mixture: int, status: str, reason: str | None, **measured: Any) -> AudioRow:
        """The row of ``mixture`` with the ``measured`` fields."""
        return AudioRow(
            sampler=self.variant.label,
            mixture=mixture,
            seed=self.seed,
            budget=self.budget,
            status=status,
            reason=reason,
            algorithm=self.variant.name,
            prior="independent" if self.variant.independent else "joint",
            config=self.plan.config,
            finished_at=time.time(),
            **measured,
        )


def _rows(
    cells: _Cells, mixtures: Sequence[int], references: Tensor, separated: Separated, rate: int
) -> list[AudioRow]:
    """The rows of a separated batch: SI-SDRi of ``separated.stems`` against ``references``
    ``[b, S, N]``."""
    cost = {
        "nfe_forward": separated.nfe_forward,
        "nfe_backward": separated.nfe_backward,
        "seconds": separated.seconds,
        "batch_mixtures": len(mixtures),
        "peak_memory_bytes": separated.peak_memory[0],
        "peak_memory_kind": separated.peak_memory[1],
        "device": cells.device,
    }
    rows = []
    for mixture, estimate, reference in zip(mixtures, separated.stems, references):
        if not bool(torch.isfinite(estimate).all()):
            rows.append(cells.row(mixture, "diverged", "non-finite separated stems", **cost))
            continue
        score = si_sdr_improvement(estimate, reference, rate)
        rows.append(
            cells.row(
                mixture,
                "done",
                None,
                si_sdri=tuple(float(v) for v in score.per_stem),
                si_sdri_mean=score.mean,
                windows_kept=score.windows_kept,
                windows_total=score.windows_total,
                window_samples=score.window,
                **cost,
            )
        )
    return rows


@dataclass
class AudioSummary:
    """What a call of :func:`run_audio_benchmark` did: rows written per status (``done``,
    ``diverged``, ``skipped``), rows already finished, and notes."""

    done: int = 0
    diverged: int = 0
    skipped: int = 0
    already: int = 0
    notes: list[str] = field(default_factory=list)


def _check_options(mixtures: int, budget: float | None, batch_size: int, sigma_y: float) -> None:
    """``ValueError`` for an option out of range (:func:`check_noise_and_budget`; ``mixtures``
    and ``batch_size`` integers >= 1)."""
    check_noise_and_budget(sigma_y, budget)
    for name, value in (("--mixtures", mixtures), ("--batch", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")


def run_audio_benchmark(
    prior: Path | str,
    data: Path | str,
    db_path: Path | str,
    *,
    independent_prior: Path | str | None = None,
    mixtures: int = 20,
    samplers: str = "all",
    mgdm_sweeps: Sequence[int] = DEFAULT_SWEEPS,
    mgdm_likelihood: str = "plain",
    mgdm_preset: str = "audio",
    mgdm_fit: str = "variational",
    seeds: str | Sequence[int] = "0",
    budget: float | None = None,
    batch_size: int = 4,
    sigma_y: float = AUDIO_SIGMA_Y,
    only: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> AudioSummary:
    """Separate every (sampler, mixture, seed) cell not yet in the database ``db_path``.

    Args:
        prior: a four-stem prior folder (``mgdm train audio-prior --stems all``).
        data: a stem file ``[N, 4, L]`` of ``mgdm audio-data`` (the test split).
        db_path: the SQLite file (module docstring); finished rows are skipped. An existing
            file must be a database of this benchmark with the same setting (data, priors,
            ``sigma_y``, ``batch_size``); a new one is created once the inputs have loaded.
        independent_prior: a folder of four single-stem priors, for ``mgdm-independent``.
        mixtures: how many scoreable mixtures, the first ones of the file.
        samplers: ``"all"`` (the audio samplers) or a comma list of registered names.
        mgdm_sweeps: one MGDM variant per Gibbs sweep count ``R``.
        mgdm_likelihood: MGDM's potential, ``plain`` or ``covariance-corrected``
            (:func:`audio_variants`).
        mgdm_preset: the MGDM preset its variants start from (``audio`` by default).
        mgdm_fit: MGDM's draw of ``x_ell``, ``variational`` or ``rto`` (:func:`audio_variants`).
        seeds: run seeds (``"0-2"`` or integers); each gives new sampler draws.
        budget: network calls per window for every sampler (``None``: their own settings).
        batch_size: mixtures per sampler call.
        sigma_y: std of the likelihood (the observation itself is noise-free).
        only: run only the variants of these labels (e.g. ``["mgdm-independent"]``, to share
            the variants of one sampler list between processes).
        device: where the samplers run (metrics on the CPU); one this machine has.
        progress: show a progress bar over cells.
    """
    _check_options(mixtures, budget, batch_size, sigma_y)
    seed_list = parse_seeds(seeds) if isinstance(seeds, str) else sorted(set(seeds))
    variants, notes = audio_variants(
        samplers,
        mgdm_sweeps,
        independent_prior is not None,
        mgdm_likelihood,
        mgdm_preset,
        mgdm_fit,
    )
    if only is not None:
        labels = [v.label for v in variants]
        unknown = sorted(set(only) - set(labels))
        if unknown:
            raise ValueError(
                f"--only names {', '.join(unknown)}, not among this run's variants "
                f"{', '.join(labels)}."
            )
        variants = [v for v in variants if v.label in only]
    summary = AudioSummary(notes=notes)
    if mixtures < 20:
        notes.append(f"{mixtures} mixtures: the confidence intervals are rough below 20.")
    device = resolve_device(device)
    db = Path(db_path)
    run_setting = {"batch": str(batch_size)}
    check_audio_db(db, run_setting)
    priors = load_priors(prior, independent_prior, device)
    stem_data = load_stem_tensor(data)
    check_data(stem_data.names, stem_data.sample_rate, priors)
    indices = select_mixtures(stem_data.stems, mixtures, stem_data.sample_rate)
    setting = {
        "data": json.dumps({"sha256": file_sha256(Path(data)), **stem_data.fingerprint()}),
        "prior": prior_digest(prior),
        "sigma_y": repr(float(sigma_y)),
        **run_setting,
    }
    if independent_prior is not None:
        setting["independent_prior"] = prior_digest(independent_prior)
    key_budget = float(budget or 0)
    with closing(open_audio_db(db)) as connection:
        check_setting(connection, setting, db)
        stored = [r for r in stored_rows(connection) if r.budget == key_budget]
        finished = {r.key for r in stored if r.status != "skipped"}
        plans = {}
        for variant in variants:
            kind = "independent" if variant.independent else "joint"
            plans[variant.label] = plan_variant(variant, priors[kind], budget, sigma_y)
        _check_configs(stored, plans, db)
        batches = [
            (_Cells(variant, seed, key_budget, plans[variant.label], str(device)), chunk)
            for variant in variants
            for seed in seed_list
            for chunk in chunks(indices, batch_size)
        ]
        missing = sum(cells.key(i) not in finished for cells, chunk in batches for i in chunk)
        summary.already = len(variants) * len(seed_list) * len(indices) - missing
        with progress_bar(missing, "audio cells", progress) as bar:
            for cells, chunk in batches:
                if finished.issuperset(cells.key(i) for i in chunk):
                    continue
                references = stem_data.stems[chunk]
                for row in _batch_rows(cells, chunk, references, priors, sigma_y, device):
                    if row.key not in finished:
                        insert_row(connection, row)
                        setattr(summary, row.status, getattr(summary, row.status) + 1)
                        bar.update(1)
    return summary


def _batch_rows(
    cells: _Cells,
    batch: Sequence[int],
    references: Tensor,
    priors: dict[str, AudioDenoiser],
    sigma_y: float,
    device: torch.device,
) -> list[AudioRow]:
    """The rows of one batch of mixtures: separated and scored, or skipped."""
    plan = cells.plan
    if plan.sampler is None:
        return [cells.row(i, "skipped", plan.reason) for i in batch]
    prior = priors["independent" if cells.variant.independent else "joint"]

    def seeds(j: int, windows: int) -> list[int]:
        return window_seeds(cells.variant.name, batch[j], cells.seed, windows)

    separated = separate_batch(plan.sampler, prior, references.sum(1), seeds, sigma_y, device)
    return _rows(cells, batch, references, separated, prior.sample_rate)


def _check_configs(stored: Sequence[AudioRow], plans: dict[str, Plan], db: Path) -> None:
    """``ValueError`` when ``db`` holds finished rows of a label at this budget sampled with
    another configuration than the one this run would use."""
    for row in stored:
        plan = plans.get(row.sampler)
        if row.status == "skipped" or plan is None:
            continue
        current = plan.sampler.config if plan.sampler is not None else None
        if not config_matches(row.config, current, plan.config):
            raise ValueError(
                f"{db} holds {row.sampler!r} separations made with another configuration; use "
                "another database or another sampler label."
            )
