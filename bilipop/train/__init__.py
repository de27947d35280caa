"""Training: data loading, the loop, GPipe staging (pipeline.py) and torchrun (distributed.py)."""
