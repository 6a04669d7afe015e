"""The textbook edition of the dropout family (being written)."""
__all__: list[str] = []
