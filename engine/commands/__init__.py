"""Subcommands of the castream CLI (one module each)."""
