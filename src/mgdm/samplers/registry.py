"""Samplers by name, for the command line and the benchmarks.

The built-in samplers are named here with the module that defines them and imported on first
use, so that importing :mod:`mgdm` stays cheap and each algorithm lives in its own module.
"""

from __future__ import annotations

import importlib
from typing import Any

from mgdm.problem import Problem
from mgdm.samplers.base import Sampler
from mgdm.samplers.settings import Domain

BUILTIN_SAMPLERS: dict[str, str] = {
    "mgdm": "mgdm.samplers.mgdm:MGDM",
    "dps": "mgdm.samplers.dps:DPS",
    "pgdm": "mgdm.samplers.pgdm:PGDM",
    "ddnm": "mgdm.samplers.ddnm:DDNM",
    "diffpir": "mgdm.samplers.diffpir:DiffPIR",
    "reddiff": "mgdm.samplers.reddiff:REDDiff",
    "daps": "mgdm.samplers.daps:DAPS",
    "pnpdm": "mgdm.samplers.pnpdm:PnPDM",
    "msdm": "mgdm.samplers.msdm:MSDM",
    "psld": "mgdm.samplers.psld:PSLD",
    "resample": "mgdm.samplers.resample:ReSample",
}
"""Registered sampler names -> ``module:Class``, in the order tables list them."""

_EXTRA: dict[str, type[Sampler]] = {}


def register(sampler_class: type[Sampler]) -> type[Sampler]:
    """Add a user-defined sampler class to the registry (usable as a decorator)."""
    _EXTRA[sampler_class.name] = sampler_class
    return sampler_class


def sampler_names() -> list[str]:
    """Every registered name: the built-ins first, then user additions."""
    return list(BUILTIN_SAMPLERS) + [n for n in _EXTRA if n not in BUILTIN_SAMPLERS]


def sampler_class(name: str) -> type[Sampler]:
    """The sampler class registered as ``name``; ``ValueError`` lists the accepted names."""
    if name in _EXTRA:
        return _EXTRA[name]
    if name not in BUILTIN_SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; accepted: {', '.join(sampler_names())}.")
    module_name, class_name = BUILTIN_SAMPLERS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def parse_sampler_list(text: str, domain: str | None = None) -> list[str]:
    """``"all"`` or a comma list of registered names; raises ``ValueError`` naming the bad one.

    With a ``domain`` (``"image"``, ``"latent"``, ``"audio"``, ``"vector"``: the Gaussian-mixture
    benchmark), ``"all"``
    keeps the samplers meant for it."""
    if text.strip() == "all":
        names = sampler_names()
        if domain is None:
            return names
        return [n for n in names if domain in sampler_class(n).domains]
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("no sampler named; give 'all' or a comma list such as 'mgdm,dps'.")
    for name in names:
        if name not in BUILTIN_SAMPLERS and name not in _EXTRA:
            raise ValueError(
                f"unknown sampler {name!r}; accepted: all, {', '.join(sampler_names())}."
            )
    return names


def build_sampler(
    name: str,
    domain: Domain = "image",
    task: str | None = None,
    preset: str | None = None,
    problem: Problem | None = None,
    **overrides: Any,
) -> Sampler:
    """The sampler ``name`` with its configuration for ``domain``, ``task``, ``preset`` and
    ``problem``, then ``overrides``: ``config_class.settings(...)``
    (:meth:`mgdm.samplers.settings.SamplerConfig.settings`, which says the order and the
    one-line ``ValueError`` of an unknown domain or preset, or a preset of a method without any).
    """
    cls = sampler_class(name)
    config = cls.config_class.settings(domain, task, preset, problem, **overrides)
    return cls(config)
