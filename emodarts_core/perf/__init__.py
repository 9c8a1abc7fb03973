"""Performance tooling, apart from the search it measures: the step benchmark (`bench`:
seconds and peak memory per search step, the fast form against the plain one in the same
run; `step`: the step it times; `resident`: the peak resident memory; `report`: its text)
and the arithmetic count behind its floor (`arithmetic`: a step's GFLOP at this machine's
matrix-product rate). docs/PERFORMANCE.md quotes what they measure."""
