"""Encoders, the late-fusion model, model names and weights, and the run folder."""
