"""Studies over many runs: the sweep (folds × datasets × scopes × seeds, with controls),
results tables and statistics, the paper's published numbers (the figures are
`emodarts_core.plots`)."""
