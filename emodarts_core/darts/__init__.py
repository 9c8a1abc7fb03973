"""Differentiable architecture search: the architect (first- and second-order α steps,
paper eqs. 3-6), the search loop, collapse remedies (paper section 6.2) and the memory
estimator that plans activation checkpointing (the step benchmark is `emodarts_core.perf`)."""
