"""Embedding modules (being written)."""
__all__: list[str] = []
