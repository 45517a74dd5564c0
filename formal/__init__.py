"""Proofs about the exact weights, and SAT and AIG reasoning about circuits. Never imports torch.

- the lemmas, one module each: ``embedding`` (the tables), ``exactness`` (order_independence), ``retrieval``
  (with ``softmax``), ``gate_ffn``, ``readout``; over ``fp`` (F(e,s) and IEEE in Z3's FP theory), ``residual``
  (symbolic residual rows), ``exp_table`` ([exp] computed exactly) and ``query`` (a query, its kind, solving it);
  ``obligations`` runs them and composes the argument;
- circuits: ``sat`` (CNF encodings with PySAT, the trace checker, the miter), ``aig`` (structural hashing,
  sweeping and optimisation with aigverse), ``equivalence`` (the one answer type both give).
"""
