"""The paper's search space (emoDARTS section 3): candidate operations, the mixed op
(eq. 2), normal, reduction and SeqNN cells, the joint CNN -> SeqNN search network, the
derived network a genotype describes, and the baselines without DARTS (section 4.2)."""
