"""castream subcommands owned by offline (imported lazily by engine.cli)."""
