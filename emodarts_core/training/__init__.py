"""Training a fixed network, and what every run shares: the run lifecycle (`run`: validation,
the run directory's claim, resume, each epoch's bookkeeping, used by the search too),
retraining a derived network or a baseline, the epoch machinery shared with the search,
data loaders, devices and precision, run directories, metrics."""
