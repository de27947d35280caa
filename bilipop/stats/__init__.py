"""The statistics that training and evaluation share: the study's ordinal credit, the expected class, and the
stratified bootstrap of their intervals.

It sits below every stage of the pipeline (pyproject.toml's import layers) and imports only numpy, so that the
training history and the evaluation report compute their figures with one definition.
"""
