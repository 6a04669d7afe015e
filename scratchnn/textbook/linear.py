"""The textbook edition of the linear family (being written)."""
__all__: list[str] = []
