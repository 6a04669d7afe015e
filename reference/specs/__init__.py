"""One file per op family; each registers its OpSpecs at import (see reference.registry)."""
