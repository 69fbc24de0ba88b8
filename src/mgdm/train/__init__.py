"""Training of the small priors the project ships (``mgdm train ...``)."""

from mgdm.train.prior import TrainConfig, build_unet, export_pipeline, parse_channels, train_prior

__all__ = ["TrainConfig", "build_unet", "export_pipeline", "parse_channels", "train_prior"]
