"""Inference from a run folder: single predictions, candidate ranking, batches and explanations."""
