"""The model card of an audio prior trained by ``mgdm train audio-prior``, from measured files only.

Every figure comes from a file or a computation on one: each training run's ``config.json``
(options and the data's fingerprint), ``prior.json`` (the UNet, whose parameters are counted)
and ``train_log.csv`` (steps, final loss, training seconds, via
:func:`mgdm.evaluate.model_card.training_summary`), and the :class:`AudioPriorEvaluation` of
``mgdm evaluate audio-prior``. Nothing is typed in by hand except the free-text training hardware
and command.

**Run folders.** A prior of one run (four stems jointly, or one stem) has one run folder; an
independent-stems prior has four, ``RUN/bass``, ``RUN/drums``, ``RUN/guitar`` and ``RUN/piano``
(the layout of :func:`mgdm.audio.prior.load_audio_prior`): :func:`training_runs` takes ``RUN``.
"""

from __future__ import annotations

import json
from pathlib import Path

from mgdm.audio.prior import MSDM_RHO, MSDM_SIGMA_MAX, MSDM_SIGMA_MIN, PRIOR_FILE
from mgdm.audio.unet1d import UNet1D, UNet1DConfig
from mgdm.diffusion.schedules import NUM_TIMESTEPS
from mgdm.evaluate.audio import AudioPriorEvaluation
from mgdm.evaluate.model_card import FINAL_LOSS_WINDOW, training_summary
from mgdm.train.audio import RUN_KIND

SOUNDFONT_LICENCES: dict[str, str] = {
    "TimGM6mb.sf2": "GPL-2; Tim Brechbill, David Bolton; Debian package `timgm6mb-soundfont`",
}
"""Licences of the soundfonts known to be used (from their Debian copyright files)."""


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read {path}: {error}") from None


def training_runs(run_dir: Path, stems: tuple[str, ...], independent: bool) -> list[Path]:
    """The run folders of a prior of ``stems``: ``[run_dir]`` for one run, ``[run_dir/<stem>]``
    for an independent-stems prior. ``ValueError`` when a folder is not a finished
    ``mgdm train audio-prior`` run of the expected stems."""
    runs = [run_dir / stem for stem in stems] if independent else [run_dir]
    for run, wanted in zip(runs, [(stem,) for stem in stems] if independent else [stems]):
        layout = (
            f"for an independent-stems prior, --run is the folder holding the four runs "
            f"{', '.join(f'{s}/' for s in stems)}"
            if independent
            else "--run is the `mgdm train audio-prior --out` folder of this prior"
        )
        config_path = run / "config.json"
        if not config_path.is_file() or not (run / PRIOR_FILE).is_file():
            raise ValueError(
                f"{run} is not a finished `mgdm train audio-prior` run (config.json and "
                f"{PRIOR_FILE} expected); {layout}."
            )
        config = _read_json(config_path)
        saved = tuple(_read_json(run / PRIOR_FILE).get("stems", ()))
        if config.get("kind") != RUN_KIND or saved != wanted:
            raise ValueError(
                f"{run} is a run of the stems {list(saved)}, kind {config.get('kind')!r}; the "
                f"prior needs a {RUN_KIND} run of {list(wanted)}: {layout}."
            )
    return runs


def parameter_count(run_dir: Path) -> int:
    """Parameters of the UNet described in ``run_dir/prior.json``."""
    network = UNet1D(UNet1DConfig(**_read_json(run_dir / PRIOR_FILE)["network"]))
    return sum(p.numel() for p in network.parameters())


def _title_and_use(evaluation: AudioPriorEvaluation) -> tuple[str, str]:
    stems = [s.stem for s in evaluation.per_stem]
    shape = f"[{len(stems)}, {evaluation.length}]"
    if evaluation.independent:
        title = "Independent-stems music prior (four single-stem diffusion priors)"
        what = (
            f"Four diffusion priors (EDM-preconditioned denoisers), one per stem ({', '.join(stems)}), each\n"
            f"on waveforms [1, {evaluation.length}], used side by side as one prior on {shape}\n"
            "with independent stems, p(x) = prod_s p_s(x_s) (ISDM-style)."
        )
    elif len(stems) > 1:
        title = f"{len(stems)}-stem music diffusion prior (joint, MSDM-style)"
        what = (
            f"One diffusion prior (an EDM-preconditioned denoiser) on the stems {shape} ({', '.join(stems)})\n"
            "jointly: it models how the stems go together, as MSDM's multi-source prior."
        )
    else:
        title = f"Single-stem music diffusion prior ({stems[0]})"
        what = (
            f"A diffusion prior (an EDM-preconditioned denoiser) on {stems[0]} waveforms {shape}."
        )
    use = (
        f"{what}\nWaveforms at {evaluation.sample_rate} Hz, {evaluation.length} samples "
        f"({evaluation.length / evaluation.sample_rate:.2f} s), in WAV units (not normalised).\n"
        "Load it with `mgdm.audio.load_audio_prior(FOLDER)` (FOLDER: the folder of this card);\n"
        "separate a mix with `mgdm separate MIX.wav --prior FOLDER --out-dir DIR`."
    )
    return title, use


def _data_section(configs: list[dict], evaluation: AudioPriorEvaluation) -> str:
    """Where the training clips came from (one line per distinct data file) and the test clips."""
    lines = []
    for data in {json.dumps(c["data"], sort_keys=True): c["data"] for c in configs}.values():
        licence = SOUNDFONT_LICENCES.get(data["soundfont"], "licence: see the soundfont's source")
        last = data["first_seed"] + data["count"] - 1
        lines.append(
            f"- Training: the {data['split']} split, **{data['count']} clips** (song seeds "
            f"{data['first_seed']} … {last}) of {data['length']} samples at {data['sample_rate']} "
            f"Hz, generator version {data['generator_version']}, soundfont `{data['soundfont']}` "
            f"({licence})."
        )
    last_test = evaluation.test_first_seed + evaluation.test_clips - 1
    lines.append(
        f"- Evaluation: the {evaluation.test_split} split, {evaluation.test_clips} clips (song "
        f"seeds {evaluation.test_first_seed} … {last_test})."
    )
    return "\n".join(lines)


def _training_tables(runs: list[Path], configs: list[dict]) -> tuple[str, float]:
    """The architecture and training rows of every run, and the total training hours."""
    architecture = [
        "| part | UNet channels | factors | blocks | kernel | attention | parameters | sigma_data |",
        "|:---|:---|:---|---:|---:|:---|---:|---:|",
    ]
    training = [
        "| part | Adam lr | batch | seed | steps | final loss | training time |",
        "|:---|---:|---:|---:|---:|---:|---:|",
    ]
    hours = 0.0
    for run, config in zip(runs, configs):
        description = _read_json(run / PRIOR_FILE)
        network = description["network"]
        preconditioning = description.get("preconditioning")
        sigma_data = "–" if preconditioning is None else f"{preconditioning['sigma_data']:.4f}"
        summary = training_summary(run)
        hours += summary["training_seconds"] / 3600
        part = config["stems"]
        architecture.append(
            f"| {part} | {network['channels']} | {network['factors']} | {network['blocks']} | "
            f"{network['kernel_size']} | {'yes' if network['attention'] else 'no'} | "
            f"{parameter_count(run):,} | {sigma_data} |"
        )
        training.append(
            f"| {part} | {config['lr']} | {config['batch_size']} | {config['seed']} | "
            f"{summary['steps']} | {summary['final_loss']:.4f} | "
            f"{summary['training_seconds'] / 3600:.2f} h |"
        )
    return "\n".join(architecture) + "\n\n" + "\n".join(training), hours


def _quality_table(evaluation: AudioPriorEvaluation) -> str:
    rows = [
        "| stem | held-out loss | sample RMS | data RMS | spectral distance (dB) | floor (dB) |",
        "|:---|---:|---:|---:|---:|---:|",
    ]
    rows += [
        f"| {s.stem} | {s.heldout_loss:.4f} | {s.sample_rms:.4f} | {s.data_rms:.4f} | "
        f"{s.spectral_distance_db:.2f} | {s.spectral_floor_db:.2f} |"
        for s in evaluation.per_stem
    ]
    return "\n".join(rows)


def render_audio_model_card(
    run_dir: Path,
    evaluation: AudioPriorEvaluation,
    command: str,
    training_hardware: str,
) -> str:
    """The Markdown model card of the prior measured by ``evaluation`` and trained in
    ``run_dir`` (one run folder, or the folder of the four stem runs of an independent-stems
    prior: module docstring). ``command`` and ``training_hardware`` are quoted as given."""
    stems = tuple(s.stem for s in evaluation.per_stem)
    runs = training_runs(Path(run_dir), stems, evaluation.independent)
    configs = [_read_json(run / "config.json") for run in runs]
    tables, hours = _training_tables(runs, configs)
    title, use = _title_and_use(evaluation)
    e = evaluation
    independence = (
        " The four stems are sampled independently: nothing ties their tempo, key or rhythm."
        if e.independent
        else ""
    )
    return f"""# {title}

{use}

## Data
Synthetic songs of `mgdm audio-data`: procedural MIDI (tempo, key, chords, bass line, drum
groove, guitar and piano parts) rendered per stem by fluidsynth with a General MIDI soundfont,
mono. Splits are disjoint ranges of song seeds.
{_data_section(configs, e)}

## Architecture and training
`UNet1D` (`mgdm/audio/unet1d.py`): a 1-D UNet on waveforms with a sinusoidal time embedding;
the stems are its channels.

{tables}

- MSDM's Karras noise schedule: {NUM_TIMESTEPS} levels sigma from {MSDM_SIGMA_MIN} to
  {MSDM_SIGMA_MAX}, rho {MSDM_RHO}, abar = 1 / (1 + sigma^2); uniform integer times
  k in 1 … {NUM_TIMESTEPS}; EDM's preconditioning and loss (`PreconditionedUNet1D`, with
  sigma_data the RMS of the training clips, in the table above); Adam, no EMA.
- Final loss: the mean of the last {FINAL_LOSS_WINDOW} logged steps; training time: optimisation
  wall time in `train_log.csv` (summed over resumed sessions), **{hours:.2f} h** in all.
- Hardware: {training_hardware}.
- Command (rerun it in the same folder to resume): `{command}`

## Sample quality (measured by `mgdm evaluate audio-prior`)
{e.samples} prior samples (DDIM, {e.ddim_steps} steps, eta {e.eta}) against the {e.test_clips}
test clips.

- Held-out loss: the training objective on all {e.test_clips} test clips, one
  seeded time and noise per clip; **{e.heldout_loss:.4f}** over all stems.
- RMS: the mean over clips of each clip's RMS (full-scale units).
- Spectral distance: the mean over {e.spectrum_bands} log-spaced bands (20 Hz to
  {e.sample_rate // 2} Hz) of the absolute dB difference between average power spectra
  (Hann-windowed frames of {e.spectrum_frame} samples, hop {e.spectrum_hop}, power averaged over
  frames and clips, -100 dB floor) of the samples and of the reference, the last
  {e.reference_clips} test clips. The floor is the same distance from the first {e.floor_clips}
  test clips to the reference: the value of real data.

{_quality_table(e)}

Sampling: {e.seconds_per_sample:.2f} s per sample ({e.ddim_steps - 1} network calls{
        " of the four parts" if e.independent else ""
    }, batches of {e.batch_size}) on {e.machine}, torch {e.torch_version}, {e.threads} thread(s).

![spectrograms of a prior sample and a test clip](samples.png)

Listen: `samples/sample{{i}}_{{stem}}.wav` and `samples/sample{{i}}_mix.wav` (the sum of the
stems).

## Limits
Trained on synthetic General MIDI renderings, not recordings: it knows four instruments of one
soundfont at {e.sample_rate} Hz (nothing above {e.sample_rate // 2} Hz). The figures measure the
loss, loudness and average timbre per stem, not rhythm, harmony or how the stems fit together.{
        independence
    }
"""
