"""container modules."""
__all__: list[str] = []
