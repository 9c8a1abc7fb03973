"""Training a fixed network: retraining a derived network or a baseline, the epoch loop
shared with the search, data loaders, devices and precision, run directories, metrics."""
