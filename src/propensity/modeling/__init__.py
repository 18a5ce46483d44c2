"""Modeling: time-ordered split, LightGBM training, calibration, baselines, evaluation."""
