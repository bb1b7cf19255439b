"""Cells from structure images (issue 13): candidate ROIs in a Z-disc marker image, their
curation (true cell or not), features, organisation score and classes.

Entry point: :func:`engine.cells.analyze.analyze_structure`; the ``castream cells`` command
(:mod:`engine.commands.cells`); the contract is in docs/ARCHITECTURE.md. Torch is imported
only when a model's networks are built.
"""
