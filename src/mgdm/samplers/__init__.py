"""Posterior samplers behind one interface (see :mod:`mgdm.samplers.base`)."""

from mgdm.samplers.base import Cost, CountingDenoiser, Sampler, SampleResult
from mgdm.samplers.mgdm import MGDM, MGDMConfig, preset
from mgdm.samplers.registry import parse_sampler_list, register, sampler_class, sampler_names
from mgdm.samplers.step_schedule import IndexRange, Periodic, StepSchedule

__all__ = [
    "MGDM",
    "Cost",
    "CountingDenoiser",
    "IndexRange",
    "MGDMConfig",
    "Periodic",
    "SampleResult",
    "Sampler",
    "StepSchedule",
    "parse_sampler_list",
    "preset",
    "register",
    "sampler_class",
    "sampler_names",
]
