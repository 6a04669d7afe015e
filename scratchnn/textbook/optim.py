"""The textbook edition of the optim family (being written)."""
__all__: list[str] = []
