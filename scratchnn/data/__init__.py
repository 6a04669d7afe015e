"""Offline data: MNIST-format IDX reader, bundled digits, batch iterator."""
__all__: list[str] = []
