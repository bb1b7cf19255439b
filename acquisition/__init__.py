"""castream acquisition side: wire format, publisher SDK, TIFF replay, simulated microscope,
ingest and raw recording. Imports nothing from the other castream packages."""
