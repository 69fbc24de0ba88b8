"""The settings entry point: ``SamplerConfig.settings`` and ``build_sampler`` (samplers/settings.py)."""

from __future__ import annotations

import pytest

from mgdm.gmm_problem import make_gmm_problem
from mgdm.samplers.daps import DAPSConfig
from mgdm.samplers.dps import DPSConfig
from mgdm.samplers.mgdm import PRESETS, MGDMConfig
from mgdm.samplers.msdm import MSDMConfig
from mgdm.samplers.pnpdm import PnPDMConfig
from mgdm.samplers.registry import build_sampler


def test_presets_are_listed() -> None:
    assert MGDMConfig.presets() == (
        "reference",
        "variational",
        "default",
        "dense-grid",
        "fast",
        "gmm",
        "audio",
    )
    assert DPSConfig.presets() == () and MSDMConfig.presets() == ()
    assert MGDMConfig.settings("image", preset="reference") == MGDMConfig()


def test_domain_and_task_defaults_are_applied() -> None:
    assert DPSConfig.settings("image", task="hdr") == DPSConfig(gamma=0.07)
    assert DPSConfig.settings("latent", task="sr4", num_steps=50) == DPSConfig(50, 1.0)
    assert DPSConfig.settings("image", task="colorization") == DPSConfig()  # no entry: defaults
    assert DPSConfig.settings("audio").gamma == 1.0
    assert PnPDMConfig.settings("audio", rho_min=0.5).rho_min == 0.5  # overrides come last
    assert MGDMConfig.settings("audio") == PRESETS["audio"]
    assert MGDMConfig.settings("image", task="sr4") == MGDMConfig.settings("latent")
    assert MGDMConfig.settings("latent") == PRESETS["default"]
    assert MGDMConfig.settings("gmm") == PRESETS["gmm"]
    assert MGDMConfig.settings("gmm", preset="default") == PRESETS["default"]
    assert build_sampler("mgdm", "audio", preset="fast").config == PRESETS["fast"]
    assert build_sampler("daps", task="hdr").config.lr == 2e-5


def test_problem_dependent_settings() -> None:
    case = make_gmm_problem(8, 2, 0)
    s_max = float(case.problem.operator.svd.singular_values.max())
    config = DAPSConfig.settings("gmm", problem=case.problem)
    assert config.tau is None and config.lr == 0.5 * case.sigma_y**2 / s_max**2
    assert DAPSConfig.settings("image", problem=case.problem) == DAPSConfig()
    assert DPSConfig.settings("gmm", problem=case.problem) == DPSConfig()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: DPSConfig.settings("video"), "unknown domain 'video'; accepted: image, latent"),
        (lambda: MGDMConfig.settings("image", preset="fastest"), "unknown MGDM preset 'fastest'"),
        (lambda: DPSConfig.settings("image", preset="fast"), "DPS has no named presets"),
        (lambda: DPSConfig.settings("audio", task="sr4"), "the audio domain has no named tasks"),
        (lambda: build_sampler("pnpdm", "gmm", preset="default"), "PnPDM has no named presets"),
    ],
)
def test_bad_settings_are_refused_in_one_line(build, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        build()
    assert "\n" not in str(error.value)
