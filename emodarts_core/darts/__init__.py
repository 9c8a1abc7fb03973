"""Differentiable architecture search: the architect (first- and second-order α steps,
paper eqs. 3-6), the search (`search`: `run_search`; `search_steps`: an epoch's steps;
`alpha_record`: the α history, the genotype and the verdict), collapse remedies (paper
section 6.2) and the memory estimator that plans activation checkpointing (the step
benchmark is `emodarts_core.perf`)."""
