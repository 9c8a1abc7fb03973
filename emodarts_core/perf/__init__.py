"""Performance tooling, apart from the search it measures: the step benchmark (`bench`:
seconds and peak memory per search step, optimised against the plain form in the same
run) and the arithmetic count behind its floor (`arithmetic`: a step's GFLOP at this
machine's matrix-product rate). docs/PERFORMANCE.md quotes what they measure."""
