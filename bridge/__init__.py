"""Engines that join the other packages (a proof of torch weights, a trained model audited against its task's step
circuit, exports with their proofs), and the commands over them. It may import every package; nothing imports it.

Read in this order:
- the verifier engine: ``target`` (a spec or netlist in, the construction built), ``proof`` (every lemma over the
  weights, the bounded checks, a replayed counterexample: the ``Report``), ``bounded`` (the whole-model checks,
  sized before they run, and which arithmetic runs them), ``estimates`` (every command's cost in seconds and
  bytes, calibrated on this machine), ``replay`` (a refuted lemma's report: the witness's own
  replay in F(e,s), the whole model's, and torch's under --ieee), ``smt_export`` (the answered queries as SMT-LIB,
  re-solved by cvc5 or bitwuzla);
- the audit library: ``audit`` (a trained checkpoint, or any model as a function, against the construction),
  ``audited`` (a model as the audit sees it), ``foreign`` (vocabulary files: a task's tokens in another model's
  ids), ``audit_plots``; ``certificate`` (every prompt of a size checked: certificates, shards, checks, the
  Clopper-Pearson bound of a sample);
- interoperability: ``manifest`` (a construction's proved mechanism as JSON, and the attention target of every
  query), ``export`` (``cotproof export``: TransformerLens, Hugging Face GPT-2, the mechanism suite);
- the public pytest API: ``testing`` (``assert_proved``, ``assert_refuted``);
- what engines and shells share: ``output`` (the exit-code table, errors, ``--json``), ``progress``;
- ``commands/``: the command shells, thin over the above (flags, printing, exit codes; see its docstring), with
  ``cli`` (``python -m bridge.cli``, the ``cotproof`` command) and ``verify`` (``python -m bridge.verify``) as the
  two entry points at their old names;
- ``benchmarks/``: what ``cotproof bench`` runs, each in its own process.
"""
