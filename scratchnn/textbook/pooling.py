"""The textbook edition of the pooling family (being written)."""
__all__: list[str] = []
