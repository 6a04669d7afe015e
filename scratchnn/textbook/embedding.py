"""The textbook edition of embedding (being written)."""
__all__: list[str] = []
