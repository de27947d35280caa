"""Evaluation of a run: metrics, trivial floors, the study's figures, plots and the report."""
