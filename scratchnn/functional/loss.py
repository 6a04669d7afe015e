"""loss ops (see the family issue)."""
__all__: list[str] = []
