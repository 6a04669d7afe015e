"""recurrent modules."""
__all__: list[str] = []
