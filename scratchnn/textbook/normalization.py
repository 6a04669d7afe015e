"""The textbook edition of the normalization family (being written)."""
__all__: list[str] = []
