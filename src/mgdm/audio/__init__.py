"""Music source separation: synthetic four-stem data, the mixing operator, 1-D diffusion priors,
SI-SDR improvement.

Modules: :mod:`~mgdm.audio.midi` and :mod:`~mgdm.audio.synth` (procedural songs rendered by
fluidsynth), :mod:`~mgdm.audio.dataset` (splits and files), :mod:`~mgdm.operators.mixing` (the
operator), :mod:`~mgdm.audio.unet1d`, :mod:`~mgdm.audio.prior` and :mod:`~mgdm.train.audio`
(priors), :mod:`~mgdm.audio.separate` (``separate_tensor``, ``separate_file``; import it from
there: it depends on the samplers, which depend on this package),
:mod:`~mgdm.audio.metrics` (SI-SDRi), :mod:`~mgdm.audio.resample`, :mod:`~mgdm.audio.wav`.
"""

from mgdm.audio.constants import CLIP_LENGTH, SAMPLE_RATE, STEMS
from mgdm.audio.metrics import SeparationScore, si_sdr, si_sdr_improvement
from mgdm.audio.prior import (
    AudioPrior,
    IndependentStemsPrior,
    load_audio_prior,
    msdm_schedule,
    save_audio_prior,
)
from mgdm.audio.resample import resample
from mgdm.audio.unet1d import UNet1D, UNet1DConfig, build_unet1d
from mgdm.operators.mixing import Mixing, MixingSVD

__all__ = [
    "CLIP_LENGTH",
    "SAMPLE_RATE",
    "STEMS",
    "AudioPrior",
    "IndependentStemsPrior",
    "Mixing",
    "MixingSVD",
    "SeparationScore",
    "UNet1D",
    "UNet1DConfig",
    "build_unet1d",
    "load_audio_prior",
    "msdm_schedule",
    "resample",
    "save_audio_prior",
    "si_sdr",
    "si_sdr_improvement",
]
