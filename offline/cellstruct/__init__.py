"""Structure-image cell models (issue 13): datasets from the structure simulator, training of
the ROI curator and the structure heads, evaluation against baselines.

Splits are by field (seed ranges that never overlap) and augmentation happens only inside
training batches, after the split — never copies of one cell on both sides (AMES's leak).
"""
