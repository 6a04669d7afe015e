"""Optimizers step-for-step equal to torch.optim (see issue: training)."""
__all__: list[str] = []
