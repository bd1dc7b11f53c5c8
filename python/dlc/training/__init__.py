"""Training: the recipe in the model file, the compiled training step, the fit loop, checkpoints."""
