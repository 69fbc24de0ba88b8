"""The fixed conventions of the audio part: stem names and order, sample rate, clip length.

* Stems are ordered ``bass, drums, guitar, piano`` (Slakh2100 / MSDM order); a multi-stem
  tensor is ``[..., 4, L]`` in that order and the mix is their sum.
* Sample rate 8 kHz and clips of ``2^14 = 16,384`` samples (≈ 2.05 s): small enough to train
  a 1-D UNet on CPU, a length divisible by ``4^7`` so a UNet can downsample it several times
  by 2 or 4, and still long enough to hold one or two bars of music (one to three chords).
  Everything keeps frequencies below 4 kHz: enough for bass, drums, guitar and piano to be
  told apart, not for hi-fi listening.
* Audio samples are in WAV units (full scale ``[-1, 1]``), not normalised per clip.
"""

from __future__ import annotations

STEMS: tuple[str, ...] = ("bass", "drums", "guitar", "piano")
"""Stem names in tensor order."""

SAMPLE_RATE = 8000
"""Samples per second of the data and the priors."""

CLIP_LENGTH = 2**14
"""Samples per training clip (and per separation window)."""
