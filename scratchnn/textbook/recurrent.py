"""The textbook edition of the recurrent family (being written)."""
__all__: list[str] = []
