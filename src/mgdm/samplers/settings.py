"""Sampler settings as data: named presets and per-domain and per-task defaults.

Every sampler configuration derives from :class:`SamplerConfig`, and its module declares the
tables next to the configuration (the Reference's values, docs/algorithms/ and docs/algorithms/mgdm.md §8).
One entry point reads them::

    DPSConfig.settings("image", task="sr4")          # DPSConfig(num_steps=1000, gamma=1.0)
    MGDMConfig.settings("audio")                      # MGDM's audio preset
    MGDMConfig.settings("image", preset="fast", num_steps=20)
    DAPSConfig.settings("gmm", problem=problem)       # settings that depend on the problem

The configuration is built in this order, each step overriding the previous one:

1. the named preset (``preset``, else the domain's preset, else ``"default"``) for a configuration
   with presets (:meth:`SamplerConfig.named_presets`; MGDM), the field defaults otherwise;
2. ``domain_defaults[domain]``;
3. ``task_defaults[task]`` (image and latent tasks; a task without an entry adds nothing);
4. ``overrides``;
5. with a ``problem``, :meth:`SamplerConfig.for_problem` (the settings that depend on it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar, Literal, get_args

from mgdm.problem import Problem

if TYPE_CHECKING:
    from typing_extensions import Self

Domain = Literal["image", "latent", "audio", "gmm"]
"""What a sampler runs on: pixel images, latent images, audio stems, or the Gaussian-mixture
benchmark's vectors."""

DOMAINS: tuple[Domain, ...] = get_args(Domain)
"""Every :data:`Domain`, in the order error messages list them."""

TASK_DOMAINS: tuple[Domain, ...] = ("image", "latent")
"""The domains whose problems are named image tasks (:data:`TASK_NAMES` and others)."""

TASK_NAMES: tuple[str, ...] = (
    "sr4",
    "sr16",
    "box_inpainting",
    "half_mask",
    "gaussian_blur",
    "motion_blur",
    "jpeg",
    "phase_retrieval",
    "nonlinear_blur",
    "hdr",
)
"""The ten image tasks of the paper (docs/tasks.md), the keys of every sampler module's
``TASK_DEFAULTS``."""

Values = Mapping[str, object]
"""Field values of a configuration, by field name."""


@dataclass(frozen=True)
class SamplerConfig:
    """Base of every sampler configuration (a frozen dataclass): its settings tables and
    :meth:`settings`, the one way to build the configuration for a domain, task and preset.

    Class attributes a subclass sets (empty by default):
        domain_defaults: field values per domain (e.g. the audio settings of the baselines).
        task_defaults: field values per image task (the Reference's per-task values).
        domain_presets: the preset a domain starts from when none is named (MGDM: ``audio``).
    """

    domain_defaults: ClassVar[Mapping[Domain, Values]] = {}
    task_defaults: ClassVar[Mapping[str, Values]] = {}
    domain_presets: ClassVar[Mapping[Domain, str]] = {}

    @classmethod
    def method_name(cls) -> str:
        """The method's name in messages: the class name without ``Config`` (``DPS``)."""
        return cls.__name__.removesuffix("Config")

    @classmethod
    def named_presets(cls) -> Mapping[str, Self]:
        """The named configurations; empty (the base) for a method without presets."""
        return {}

    @classmethod
    def presets(cls) -> tuple[str, ...]:
        """The names :meth:`settings` accepts as ``preset`` (empty: no named presets)."""
        return tuple(cls.named_presets())

    def for_problem(self, domain: Domain, problem: Problem) -> Self:
        """This configuration with the settings of ``domain`` that depend on ``problem``; the
        base returns it unchanged (DAPS overrides it for ``gmm``)."""
        return self

    @classmethod
    def settings(
        cls,
        domain: Domain,
        task: str | None = None,
        preset: str | None = None,
        problem: Problem | None = None,
        **overrides: object,
    ) -> Self:
        """The configuration for ``domain`` (and ``task``, ``preset``, ``problem``), then
        ``overrides``, built as the module docstring says.

        A one-line ``ValueError`` for an unknown domain, a task outside the task domains, a
        preset of a method without presets, or an unknown preset.
        """
        if domain not in DOMAINS:
            raise ValueError(f"unknown domain {domain!r}; accepted: {', '.join(DOMAINS)}.")
        if task is not None and domain not in TASK_DOMAINS:
            raise ValueError(
                f"the {domain} domain has no named tasks; drop the task {task!r} (tasks belong "
                f"to {' and '.join(TASK_DOMAINS)})."
            )
        presets = cls.named_presets()
        if preset is not None and not presets:
            raise ValueError(
                f"{cls.method_name()} has no named presets; drop the preset {preset!r}."
            )
        name = preset or cls.domain_presets.get(domain, "default")
        if presets and name not in presets:
            raise ValueError(
                f"unknown {cls.method_name()} preset {name!r}; accepted: {', '.join(presets)}."
            )
        values = {
            **cls.domain_defaults.get(domain, {}),
            **(cls.task_defaults.get(task, {}) if task is not None else {}),
            **overrides,
        }
        config = replace(presets[name], **values) if presets else cls(**values)
        return config if problem is None else config.for_problem(domain, problem)
