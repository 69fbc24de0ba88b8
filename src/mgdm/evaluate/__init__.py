"""Prior evaluation and model cards: image priors (FID against the test split) and audio priors
(held-out loss, spectra)."""
