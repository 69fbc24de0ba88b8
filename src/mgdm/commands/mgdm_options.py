"""MGDM's options on the command line: one declaration for every command that runs MGDM.

:func:`add_mgdm_options` adds ``--preset`` and the overrides of the preset's fields (K, R, M,
G(i), lr(i), the index rule, ...) to a parser; :func:`mgdm_overrides` reads back the fields the
user set and :func:`mgdm_config_from_args` builds the configuration::

    MGDMConfig.settings(domain, task, preset, **overrides)

(:meth:`mgdm.samplers.settings.SamplerConfig.settings`: the preset, then the domain's and the
task's defaults, then the overrides). ``mgdm bench gmm`` builds it for the ``gmm`` domain,
``mgdm restore`` for the ``image`` or ``latent`` domain and its task. An option left out keeps
the preset's value; an out-of-range value is a one-line ``ValueError`` of
:class:`~mgdm.samplers.mgdm.MGDMConfig` naming the field (an argparse error for text that is no
number).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable

from mgdm.commands.arguments import finite_float
from mgdm.samplers.mgdm import FITS, INDEX_RULES, MGDM_LIKELIHOODS, PRESETS, MGDMConfig
from mgdm.samplers.settings import Domain
from mgdm.samplers.step_schedule import StepSchedule

DOMAIN_PRESETS_HELP = (
    "the domain's: default for images and latents, gmm for the Gaussian mixtures, audio for audio"
)
"""What ``--preset`` left out means (:attr:`MGDMConfig.domain_presets`)."""

_FIELDS: dict[str, str] = {
    "gibbs_sweeps": "gibbs_sweeps",
    "num_steps": "num_steps",
    "denoising_steps": "denoising_steps",
    "min_index": "min_index",
    "mc_samples": "mc_samples",
    "lr_mode": "lr_mode",
    "kl": "kl",
    "index_rule": "index_rule",
    "threshold": "threshold",
    "eta": "eta",
    "likelihood": "likelihood",
    "fit": "fit",
    "fit_particles": "fit_particles",
}
"""Options whose value is the field's value as parsed: argparse destination -> field name."""


def add_mgdm_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--preset`` and the MGDM overrides (a group "MGDM options") to ``parser``."""
    group = parser.add_argument_group("MGDM options (override the preset)")
    group.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help=f"MGDM preset: {', '.join(PRESETS)} (default: {DOMAIN_PRESETS_HELP})",
    )
    group.add_argument("--gibbs-sweeps", "-R", type=int, help="R, Gibbs sweeps per outer step")
    group.add_argument("--num-steps", "-K", type=int, help="K, points of the timestep grid (>= 4)")
    group.add_argument(
        "--denoising-steps",
        "-M",
        type=int,
        help="M, points of the DDIM chain (1 = one-shot Tweedie)",
    )
    group.add_argument("--gradient-steps", "-G", help="G(i) schedule, e.g. '3,-10:=20'")
    group.add_argument("--lr", help="learning-rate schedule lr(i), e.g. '0.03,:11=0.01'")
    group.add_argument("--lr-mode", choices=["absolute", "bridge-std"])
    group.add_argument("--kl", choices=["monte-carlo", "closed-form"])
    group.add_argument("--mc-samples", type=int, help="S, samples per Adam step")
    group.add_argument("--index-rule", choices=INDEX_RULES)
    group.add_argument("--threshold", type=int, help="outer step from which mix uses ell = p")
    group.add_argument("--min-index", type=int, help="smallest ell of the uniform index draws")
    group.add_argument("--per-sample-index", choices=["yes", "no"], help="draw ell per sample")
    group.add_argument(
        "--eta", type=finite_float, help="DDIM eta of the chain and the initialisation, 0 to 1"
    )
    group.add_argument(
        "--likelihood",
        choices=MGDM_LIKELIHOODS,
        help="potential of the fit ('exact': the true g_ell, an oracle for Gaussian-mixture and "
        "kernel-density priors)",
    )
    group.add_argument(
        "--fit",
        choices=FITS,
        help="draw of x_ell: 'variational' (the Gaussian fit with Adam), 'rto' "
        "(randomize-then-optimise with Gauss-Newton line steps: the default preset's; plain "
        "likelihood, Gaussian noise) or 'exact' (an oracle, same priors as above)",
    )
    group.add_argument(
        "--fit-particles", type=int, help="N, proposals per chain of the exact x_ell draw"
    )
    group.add_argument(
        "--last-step-correction",
        choices=["yes", "no"],
        help="with --fit rto and M = 1: the forward call of x_0 = D_ell(x_ell) also corrects "
        "the draw's last line step (no extra call)",
    )


def mgdm_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The MGDM fields the user set (``--preset`` excluded), by field name; schedules parsed
    (:meth:`~mgdm.samplers.step_schedule.StepSchedule.parse`, a one-line ``ValueError``)."""
    overrides: dict[str, object] = {}
    for option, name in _FIELDS.items():
        value = getattr(args, option, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "gradient_steps", None) is not None:
        overrides["gradient_steps"] = StepSchedule.parse(args.gradient_steps)
    if getattr(args, "lr", None) is not None:
        overrides["learning_rate"] = StepSchedule.parse(args.lr)
    if getattr(args, "per_sample_index", None) is not None:
        overrides["per_sample_index"] = args.per_sample_index == "yes"
    if getattr(args, "last_step_correction", None) is not None:
        overrides["last_step_correction"] = args.last_step_correction == "yes"
    return overrides


def _yes_or_no(value: str) -> bool:
    if value not in ("yes", "no"):
        raise ValueError(value)
    return value == "yes"


def _field_reader(current: object) -> tuple[Callable[[str], object], str]:
    """How ``--mgdm-set`` reads a value for a field whose default is ``current``, and what it
    accepts (for the error message)."""
    if isinstance(current, bool):
        return _yes_or_no, "yes or no"
    if isinstance(current, StepSchedule):
        return StepSchedule.parse, "a schedule, e.g. '3,-10:=20'"
    return type(current), f"a {type(current).__name__}, e.g. {current}"


def parse_assignments(texts: list[str] | None) -> dict[str, object]:
    """MGDM fields from ``FIELD=VALUE`` texts (``--mgdm-set``): ``VALUE`` is read as the field's
    type in :class:`MGDMConfig` (``yes``/``no`` for a flag, a schedule text for ``G(i)`` and
    ``lr(i)``); a one-line ``ValueError`` names an unknown field or an unreadable value. The
    configuration checks the ranges when it is built."""
    defaults = MGDMConfig()
    fields = sorted(f.name for f in dataclasses.fields(MGDMConfig) if f.init)
    overrides: dict[str, object] = {}
    for text in texts or []:
        name, equals, value = text.partition("=")
        name, value = name.strip().replace("-", "_"), value.strip()
        if not equals or not value or name not in fields:
            raise ValueError(
                f"--mgdm-set takes FIELD=VALUE with FIELD one of {', '.join(fields)}; got {text!r}."
            )
        read, accepted = _field_reader(getattr(defaults, name))
        try:
            overrides[name] = read(value)
        except ValueError:
            raise ValueError(f"--mgdm-set {name}: {value!r} is not {accepted}.") from None
    return overrides


def preset_name(args: argparse.Namespace) -> str | None:
    """The preset ``--preset`` names; ``None`` when left out (the domain's preset)."""
    return getattr(args, "preset", None)


def mgdm_config_from_args(
    args: argparse.Namespace, domain: Domain, task: str | None = None
) -> MGDMConfig:
    """The configuration of ``--preset`` for ``domain`` and ``task`` with the user's overrides
    (module docstring)."""
    return MGDMConfig.settings(domain, task, preset_name(args), **mgdm_overrides(args))
