"""castream engine: windows → backend → stitch → postprocess → characterize → events → sinks,
plus the ``castream`` CLI. Imports ``acquisition``; never ``ui`` or ``offline`` (except lazily
from the CLI)."""
