"""Benchmarks: the Gaussian-mixture exact-posterior benchmark (and, later, images and audio)."""
