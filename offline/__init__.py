"""castream offline: datasets, training, evaluation, threshold tuning, export, cell classifier."""
