"""Proofs about the exact weights, and SAT and AIG reasoning about circuits. Never imports torch.

- the lemmas, one module each: ``embedding`` (the tables), ``exactness`` (order_independence), ``retrieval``
  (with ``softmax``), ``gate_ffn``, ``readout``; over ``fp_theory`` (F(e,s) and IEEE in Z3's FP theory), ``residual``
  (symbolic residual rows), ``exp_table`` ([exp] computed exactly), ``query`` (a query, solving it) and
  ``witness`` (a counterexample as an object of its kind, which replays itself in F(e,s) or says why it cannot);
  ``obligations`` runs them and composes the argument;
- circuits: ``sat`` (CNF encodings with PySAT, the trace checker, the miter), ``aig`` (structural hashing,
  sweeping and optimisation with aigverse), ``equivalence`` (the one answer type both give).
"""
