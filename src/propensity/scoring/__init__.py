"""Scoring: the model bundle, the scorer and its reasons."""
