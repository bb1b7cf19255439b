"""``castream`` subcommands that live in ``ui`` (imported lazily by ``engine.cli``)."""
