"""Measure the figures of docs/determinism.md: when a seed gives the same sample, and how far apart
two samples of the same seed end up when the run changes (batch composition, thread count).

Usage (from the repository root; about 15 minutes on one core of a 2-core x86 VM)::

    .venv/bin/python scripts/measure_determinism.py --json docs/results/determinism.json

Prints Markdown tables and, with ``--json``, writes every measured value. A difference is
``max |a - b| / S``: the largest elementwise difference between two samples of the same seed,
relative to the scale ``S = max(D, max |a|)`` of the numbers involved, where ``a`` is the sample
drawn alone and ``D`` the data scale of the problem (so a nearly silent estimate does not magnify
the difference, and an estimate far larger than the data is measured against its own size):

* Gaussian mixture (``make_gmm_problem(8, 2, 0)``): the largest |coordinate| of the means, 16;
* Fashion-MNIST images (shipped DDPM prior, task ``sr4``, sigma_y 0.05): the half-width of the data
  range ``[-1, 1]``, 1;
* audio (tiny random four-stem 1-D UNets, mixes of 64 samples): the largest |sample| of the mixes.

Samples are compared directly, never through a metric of them (a log-ratio such as SI-SDR
magnifies rounding; the audio section shows by how much). Run length is counted in network calls
per sample: samplers are rescaled with ``Sampler.with_budget`` (the README's unit). Everything runs
on one thread unless a section says otherwise. The Fashion-MNIST sections are left out when the
dataset is not installed (``apt-get install dataset-fashion-mnist``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from mgdm.gmm_problem import make_gmm_problem
from mgdm.operators import GaussianNoise
from mgdm.priors.base import Denoiser
from mgdm.problem import Problem
from mgdm.samplers.base import Sampler
from mgdm.samplers.registry import build_sampler, parse_sampler_list
from mgdm.samplers.step_schedule import StepSchedule

BATCH = [3, 5, 9]
"""The batch of three seeds compared with each seed alone (the tests' batch)."""
GMM_CENSUS = {100: 64, 200: 32, 1000: 32}
"""Calls per sample -> how many seeds (0, 1, …) run in one batch and each alone."""
IMAGE_BUDGETS = (50, 100)
IMAGE_SAMPLERS = ("mgdm", "dps", "ddnm")
AUDIO_SAMPLERS = {  # label -> (registry name, overrides of the audio settings); budget 70
    "ddnm": ("ddnm", {}),
    "msdm": ("msdm", {}),
    "mgdm-R1": ("mgdm", {"gibbs_sweeps": 1}),
}
CENSUS_IMAGES = 8
LENGTH = 64


@dataclass
class Case:
    """A prior and a problem with its data scale ``D``. ``per_sample``: the problem holds one
    observation per seed of :data:`BATCH` (a seed alone is sampled with its own observation)."""

    label: str
    prior: Denoiser
    problem: Problem
    data_scale: float
    per_sample: bool = False


def relative(alone: Tensor, other: Tensor, data_scale: float) -> float:
    """``max |alone - other| / max(D, max |alone|)``."""
    scale = max(data_scale, float(alone.abs().max()))
    return float((alone.double() - other.double()).abs().max()) / scale


def draw(sampler: Sampler, case: Case, seeds: Sequence[int]) -> Tensor:
    return sampler.sample(case.prior, case.problem, list(seeds)).samples


def draw_alone(sampler: Sampler, case: Case, seed: int, position: int) -> Tensor:
    """The sample of ``seed`` in a call of its own (with the observation at ``position``)."""
    problem = case.problem
    if case.per_sample:
        observation = problem.observation[position : position + 1]
        problem = Problem(problem.operator, observation, problem.noise)
    return sampler.sample(case.prior, problem, [seed]).samples[0]


def batch_pairs(sampler: Sampler, case: Case, batch: Sequence[int]) -> tuple[Tensor, Tensor]:
    """The samples of the seeds of ``batch``, each drawn alone, and all drawn in ``batch``."""
    alone = [draw_alone(sampler, case, seed, k) for k, seed in enumerate(batch)]
    return torch.stack(alone), draw(sampler, case, batch)


def batch_gaps(sampler: Sampler, case: Case, batch: Sequence[int]) -> list[float]:
    """Per seed of ``batch``: the relative difference between its sample alone and in ``batch``."""
    alone, together = batch_pairs(sampler, case, batch)
    return [relative(a, b, case.data_scale) for a, b in zip(alone, together)]


# ----------------------------------------------------------------------------- problems
def gmm_case() -> Case:
    case = make_gmm_problem(8, 2, 0)
    return Case("gmm d=8 d_y=2", case.prior, case.problem, float(case.prior.means.abs().max()))


def nearest_component(case: Case, samples: Tensor) -> Tensor:
    """The index of the mixture mean nearest to each sample ``[B, d]``."""
    means = case.prior.means.to(samples.dtype)
    return torch.cdist(samples, means).argmin(dim=1)


def fashion_images(count: int) -> Tensor | None:
    from mgdm.data.fashion_mnist import load_fashion_mnist

    try:
        return load_fashion_mnist("test", limit=count).images
    except FileNotFoundError:
        return None


def image_case(prior: Denoiser, clean: Tensor, index: int) -> Case:
    from mgdm.restore import simulate_observation
    from mgdm.tasks.registry import make_task

    task = make_task("sr4", tuple(clean.shape))
    y = simulate_observation(task, clean, 0.05, seed=0)
    problem = Problem(task.operator, y, GaussianNoise(0.05))
    return Case(f"fashion-mnist sr4 image {index}", prior, problem, 1.0)


def tiny_audio_prior(seed: int = 0):
    from mgdm.audio.constants import STEMS
    from mgdm.audio.prior import AudioPrior
    from mgdm.audio.unet1d import UNet1DConfig, build_unet1d

    config = UNet1DConfig(in_channels=4, channels=(4, 8), factors=(4,), head_channels=4)
    return AudioPrior(build_unet1d(config, seed=seed), STEMS, 8000, LENGTH)


def audio_case() -> Case:
    """tests/test_determinism.py's neural case: three mixes, one per seed of :data:`BATCH`."""
    from mgdm.audio.separate import AUDIO_SIGMA_Y
    from mgdm.operators.mixing import Mixing

    mixes = 0.1 * torch.randn(3, LENGTH, generator=torch.Generator().manual_seed(0))
    problem = Problem(Mixing(4, LENGTH), mixes, GaussianNoise(AUDIO_SIGMA_Y))
    label = "audio tiny 1-D UNet, 3 mixes"
    return Case(label, tiny_audio_prior(), problem, float(mixes.abs().max()), per_sample=True)


def audio_sampler_at_budget(name: str, overrides: dict) -> Sampler:
    from mgdm.audio.separate import audio_sampler

    return audio_sampler(name, **overrides).with_budget(70)


# ----------------------------------------------------------------------------- audio benchmark
def bench_setup():
    """The joint prior, stems and scored mixtures of tests/test_audio_bench.py's fixture."""
    from mgdm.bench.audio import select_mixtures

    stems = 0.1 * torch.randn(4, 4, LENGTH, generator=torch.Generator().manual_seed(0))
    stems[1, 1:] = 0.0
    return tiny_audio_prior(), stems, select_mixtures(stems, 3, 8000)


def bench_stems(label: str, batch_size: int, setup) -> Tensor:
    """The separated stems ``[3, S, N]`` of the three mixtures, ``batch_size`` mixtures per
    sampler call, as `mgdm bench audio --budget 70` computes them."""
    from mgdm.audio.separate import AUDIO_SIGMA_Y
    from mgdm.bench.audio import AudioVariant, plan_variant, separate_batch, window_seeds

    prior, stems, mixtures = setup
    name, overrides = AUDIO_SAMPLERS[label]
    plan = plan_variant(AudioVariant(label, name, overrides), prior, 70, AUDIO_SIGMA_Y)
    if plan.sampler is None:
        raise RuntimeError(f"{label}: {plan.reason}")
    out = []
    for start in range(0, len(mixtures), batch_size):
        chunk = mixtures[start : start + batch_size]

        def seeds(j: int, windows: int, chunk=chunk) -> list[int]:
            return window_seeds(name, chunk[j], 0, windows)

        mixes = stems[chunk].sum(1)
        cpu = torch.device("cpu")
        out.append(separate_batch(plan.sampler, prior, mixes, seeds, AUDIO_SIGMA_Y, cpu).stems)
    return torch.cat(out)


def bench_section(setup) -> list[dict]:
    from mgdm.audio.metrics import si_sdr_improvement

    _, stems, mixtures = setup
    data_scale = float(stems[mixtures].sum(1).abs().max())
    rows = []
    for label in AUDIO_SAMPLERS:
        one, three = bench_stems(label, 1, setup), bench_stems(label, 3, setup)
        si_gap = 0.0
        for k, mixture in enumerate(mixtures):
            a = si_sdr_improvement(one[k], stems[mixture], 8000).per_stem
            b = si_sdr_improvement(three[k], stems[mixture], 8000).per_stem
            si_gap = max(si_gap, max(abs(float(x) - float(y)) for x, y in zip(a, b)))
        rows.append(
            {
                "sampler": label,
                "data_scale": data_scale,
                "largest_stem_value": float(one.abs().max()),
                "relative": relative(one, three, data_scale),
                "si_sdri_gap_db": si_gap,
            }
        )
    return rows


# ----------------------------------------------------------------------------- other checks
def rerun_gap(sampler: Sampler, case: Case) -> float:
    """Max |difference| between two runs of the same batch (0.0: bit-identical)."""
    return float((draw(sampler, case, BATCH) - draw(sampler, case, BATCH)).abs().max())


def thread_gap(sampler: Sampler, case: Case) -> float:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = draw(sampler, case, BATCH)
        torch.set_num_threads(2)
        two = draw(sampler, case, BATCH)
    finally:
        torch.set_num_threads(before)
    return relative(one, two, case.data_scale)


def digests(images: Tensor | None) -> dict[str, str]:
    """sha256 of the samples of a few fixed runs (compared across processes)."""
    runs: list[tuple[str, Sampler, Case]] = [
        ("gmm mgdm 100 calls", build_sampler("mgdm").with_budget(100), gmm_case()),
        ("gmm dps 100 calls", build_sampler("dps").with_budget(100), gmm_case()),
        ("audio ddnm 70 calls", audio_sampler_at_budget("ddnm", {}), audio_case()),
    ]
    if images is not None:
        case = image_case(load_image_prior(), images[0], 0)
        runs.append(("image dps 50 calls", build_sampler("dps").with_budget(50), case))
    out = {}
    for label, sampler, case in runs:
        samples = draw(sampler, case, BATCH).contiguous().numpy().tobytes()
        out[label] = hashlib.sha256(samples).hexdigest()
    return out


def load_image_prior() -> Denoiser:
    from mgdm.priors.catalog import load_prior

    return load_prior("fashion-mnist")


def environment() -> dict[str, object]:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
    }


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: float) -> str:
    return "0" if value == 0 else f"{value:.1e}"


def summary(gaps: Sequence[float]) -> dict[str, float | int]:
    return {
        "seeds": len(gaps),
        "median": statistics.median(gaps),
        "max": max(gaps),
        "above_1e-4": sum(g > 1e-4 for g in gaps),
        "above_1e-2": sum(g > 1e-2 for g in gaps),
    }


def log(text: str, start: float) -> None:
    print(f"  [{text}: {time.perf_counter() - start:.0f} s]", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- sections
def section_reruns(gmm: Case, images: Tensor | None, image_cases: list[Case]) -> dict:
    reruns = []
    for name in parse_sampler_list("all", domain="vector"):
        gap = rerun_gap(build_sampler(name).with_budget(100), gmm)
        reruns.append({"case": gmm.label, "sampler": name, "calls": 100, "max_abs": gap})
    audio = audio_case()
    for label, (name, overrides) in AUDIO_SAMPLERS.items():
        gap = rerun_gap(audio_sampler_at_budget(name, overrides), audio)
        reruns.append({"case": audio.label, "sampler": label, "calls": 70, "max_abs": gap})
    for name in IMAGE_SAMPLERS if image_cases else ():
        gap = rerun_gap(build_sampler(name).with_budget(50), image_cases[0])
        reruns.append({"case": image_cases[0].label, "sampler": name, "calls": 50, "max_abs": gap})
    here = digests(images)
    child = subprocess.run(
        [sys.executable, __file__, "--digest"], capture_output=True, text=True, check=True
    )
    fresh = json.loads(child.stdout.strip().splitlines()[-1])
    same = {k: here[k] == fresh.get(k) for k in here}
    print("### §1 Reruns of the same batch (seeds 3, 5, 9): max |difference|\n")
    rows = [(r["case"], r["sampler"], r["calls"], fmt(r["max_abs"])) for r in reruns]
    print(table(["problem", "sampler", "calls/sample", "max abs diff"], rows))
    print(
        "\nThe same runs in a fresh process, sha256 of the samples equal: "
        + ", ".join(f"{k}: {v}" for k, v in same.items())
        + "\n"
    )
    return {"reruns": reruns, "fresh_process": same}


def section_gmm(gmm: Case) -> list[dict]:
    rows = []
    names = parse_sampler_list("all", domain="vector")
    for calls, count in GMM_CENSUS.items():
        for name in names:
            start = time.perf_counter()
            sampler = build_sampler(name).with_budget(calls)
            alone, together = batch_pairs(sampler, gmm, list(range(count)))
            gaps = [relative(a, b, gmm.data_scale) for a, b in zip(alone, together)]
            moved = nearest_component(gmm, alone) != nearest_component(gmm, together)
            rows.append(
                {
                    "sampler": name,
                    "calls": calls,
                    **summary(gaps),
                    "other_component": int(moved.sum()),
                }
            )
            log(f"gmm {name} {calls} calls", start)
    print(
        f"### §2 Alone vs in one batch: {gmm.label} (D = {gmm.data_scale:g}); seeds 0…N-1 each "
        "alone vs all N in one batch; max |difference| / S per seed; the last column counts the "
        "seeds whose two samples lie nearest to different mixture means\n"
    )
    header = [
        "sampler",
        "calls/sample",
        "seeds N",
        "median",
        "max",
        "seeds > 1e-4",
        "seeds > 1e-2",
        "other component",
    ]
    body = [
        (
            r["sampler"],
            r["calls"],
            r["seeds"],
            fmt(r["median"]),
            fmt(r["max"]),
            r["above_1e-4"],
            r["above_1e-2"],
            r["other_component"],
        )
        for r in rows
    ]
    print(table(header, body) + "\n")
    return rows


def section_small_batches(cases: list[tuple[Case, str, int, Sampler]], title: str) -> list[dict]:
    rows = []
    for case, label, calls, sampler in cases:
        start = time.perf_counter()
        gaps = batch_gaps(sampler, case, BATCH)
        rows.append({"case": case.label, "sampler": label, "calls": calls, "gaps": gaps})
        log(f"{case.label} {label} {calls}", start)
    print(f"### {title}\n")
    body = [(r["case"], r["sampler"], r["calls"], *[fmt(g) for g in r["gaps"]]) for r in rows]
    print(table(["problem", "sampler", "calls/sample", "seed 3", "seed 5", "seed 9"], body) + "\n")
    return rows


def section_bench() -> list[dict]:
    start = time.perf_counter()
    rows = bench_section(bench_setup())
    log("audio benchmark", start)
    print(
        "### §5 `mgdm bench audio --budget 70` on tests/test_audio_bench.py's data: separated "
        f"stems at 1 vs 3 mixtures per call (D = {rows[0]['data_scale']:.3g})\n"
    )
    body = [
        (
            r["sampler"],
            f"{r['largest_stem_value']:.3g}",
            fmt(r["relative"]),
            fmt(r["si_sdri_gap_db"]),
        )
        for r in rows
    ]
    header = [
        "sampler",
        "largest stem value",
        "max abs diff / S",
        "largest SI-SDRi difference (dB)",
    ]
    print(table(header, body) + "\n")
    return rows


def section_threads(gmm: Case, image_cases: list[Case]) -> list[dict]:
    cases: list[tuple[Case, str, int, Sampler]] = [
        (gmm, name, 100, build_sampler(name).with_budget(100)) for name in IMAGE_SAMPLERS
    ]
    cases += [
        (image_cases[0], name, 50, build_sampler(name).with_budget(50))
        for name in IMAGE_SAMPLERS
        if image_cases
    ]
    audio = audio_case()
    cases += [
        (audio, label, 70, audio_sampler_at_budget(name, overrides))
        for label, (name, overrides) in AUDIO_SAMPLERS.items()
    ]
    rows = []
    for case, name, calls, sampler in cases:
        gap = thread_gap(sampler, case)
        rows.append({"case": case.label, "sampler": name, "calls": calls, "relative": gap})
    print("### §6 1 vs 2 threads, same batch (seeds 3, 5, 9): max |difference| / S\n")
    body = [(r["case"], r["sampler"], r["calls"], fmt(r["relative"])) for r in rows]
    print(table(["problem", "sampler", "calls/sample", "max abs diff / S"], body) + "\n")
    return rows


FAST_VARIATIONAL = {
    "fit": "variational",
    "num_steps": 50,
    "gradient_steps": StepSchedule.parse("2,-5:=10"),
}
"""The ``fast`` preset until 2026-12-05 (the variational fit, K = 50, G = 2, 10 in the last 5),
field by field from today's ``fast``."""


def section_long_run(images: Tensor, image_cases: list[Case]) -> dict:
    from mgdm.metrics.image_quality import psnr
    from mgdm.samplers import MGDM, preset

    start = time.perf_counter()
    # the fast preset with which docs/determinism.md §7 was measured (until 2026-12-05)
    sampler = MGDM(preset("fast", **FAST_VARIATIONAL))
    rows = []
    for index, case in enumerate(image_cases):
        together = draw(sampler, case, BATCH)
        for position, seed in enumerate(BATCH):
            alone = draw_alone(sampler, case, seed, position)
            pair = torch.stack([alone, together[position]])
            alone_psnr, batch_psnr = psnr(pair, images[index]).tolist()
            rows.append(
                {
                    "image": index,
                    "seed": seed,
                    "relative": relative(alone, together[position], 1.0),
                    "psnr_alone": alone_psnr,
                    "psnr_batch": batch_psnr,
                    "psnr_between": float(psnr(alone[None], together[position])[0]),
                }
            )
    calls = sampler.sample(image_cases[0].prior, image_cases[0].problem, [0]).cost.nfe_total
    log("long run", start)
    worst = max(rows, key=lambda r: r["relative"])
    print(
        f"### §7 A longer run: MGDM preset `fast` until 2026-12-05 ({calls:.0f} calls/sample), sr4 on "
        f"Fashion-MNIST test images 0-{len(image_cases) - 1}, seeds 3, 5, 9 alone vs in one batch\n"
    )
    body = [
        (
            r["image"],
            r["seed"],
            fmt(r["relative"]),
            f"{r['psnr_alone']:.2f}",
            f"{r['psnr_batch']:.2f}",
            f"{r['psnr_between']:.1f}",
        )
        for r in rows
    ]
    header = [
        "image",
        "seed",
        "max abs diff / S",
        "PSNR alone (dB)",
        "PSNR in batch (dB)",
        "PSNR between the two (dB)",
    ]
    print(table(header, body))
    above = {t: sum(r["relative"] > t for r in rows) for t in (1e-4, 1e-2)}
    print(
        f"\n{above[1e-4]} of {len(rows)} samples differ by more than 1e-4 S, {above[1e-2]} by "
        f"more than 1e-2 S; the largest difference is {fmt(worst['relative'])} S (image "
        f"{worst['image']}, seed {worst['seed']}: PSNR {worst['psnr_alone']:.2f} dB alone, "
        f"{worst['psnr_batch']:.2f} dB in the batch)."
    )
    return {"sampler": "mgdm preset fast (until 2026-12-05)", "calls": calls, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the measured values here")
    parser.add_argument("--digest", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    images = fashion_images(CENSUS_IMAGES)
    if args.digest:  # the child process of the fresh-process check
        print(json.dumps(digests(images)))
        return

    env = environment()
    print(
        f"CPU: {env['cpu']} ({env['cores']} cores, {env['machine']}, torch CPU capability "
        f"{env['cpu_capability']}); torch {env['torch']}; python {env['python']}\n"
    )
    results: dict[str, object] = {"environment": env}
    gmm = gmm_case()
    image_cases = []
    if images is not None:
        prior = load_image_prior()
        image_cases = [image_case(prior, images[i], i) for i in range(images.shape[0])]

    results.update(section_reruns(gmm, images, image_cases))
    results["batch_gmm"] = section_gmm(gmm)
    if image_cases:
        cases = [
            (image_cases[0], name, calls, build_sampler(name).with_budget(calls))
            for name in IMAGE_SAMPLERS
            for calls in IMAGE_BUDGETS
        ]
        title = (
            f"§3 Alone vs in one batch: {image_cases[0].label} (D = 1); seeds 3, 5, 9 each "
            "alone vs in one batch; max |difference| / S"
        )
        results["batch_image"] = section_small_batches(cases, title)
    audio = audio_case()
    cases = [
        (audio, label, 70, audio_sampler_at_budget(name, overrides))
        for label, (name, overrides) in AUDIO_SAMPLERS.items()
    ]
    title = (
        f"§4 Alone vs in one batch: {audio.label} (D = {audio.data_scale:.3g}), one mix per "
        "seed; seeds 3, 5, 9 each alone vs in one batch; max |difference| / S"
    )
    results["batch_audio"] = section_small_batches(cases, title)
    results["bench_audio"] = section_bench()
    results["threads"] = section_threads(gmm, image_cases)
    if image_cases:
        results["long_run"] = section_long_run(images, image_cases)

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
        print(f"\nwrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
