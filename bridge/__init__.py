"""The commands, and the engines that join the three other packages. It may import all of them; nothing imports it.

Read in this order:
- the verifier engine: ``target`` (a spec or netlist in, the construction built), ``proof`` (every lemma over the
  weights, the bounded checks, a replayed counterexample: the ``Report``), ``bounded`` (the whole-model checks,
  sized before they run, and which arithmetic runs them), ``replay`` (a refuted lemma's report: the witness's own
  replay in F(e,s), the whole model's, and torch's under --ieee), ``smt_export`` (the answered queries as SMT-LIB,
  re-solved by cvc5 or bitwuzla);
- the audit library: ``audit`` (a trained checkpoint, or any model as a function, against the construction),
  ``audited`` (a model as the audit sees it), ``foreign`` (vocabulary files: a task's tokens in another model's
  ids), ``audit_plots``; ``certificate`` (every prompt of a size checked: certificates, shards, checks, the
  Clopper-Pearson bound of a sample);
- interoperability: ``manifest`` (a construction's proved mechanism as JSON, and the attention target of every
  query), ``export`` (``cotproof export``: TransformerLens, Hugging Face GPT-2, the mechanism suite);
- the public pytest API: ``testing`` (``assert_proved``, ``assert_refuted``);
- the command shells, thin over the above: ``cli`` (``cotproof``), ``verify`` (``python -m bridge.verify``),
  ``commands``, ``execution`` (run, compile), ``checking`` (check, equiv), ``circuits``, ``training`` (train,
  eval, reproduce), ``certify``, ``bench``; and what every shell shares: ``output`` (the exit-code table, errors,
  ``--json``), ``flags`` (typed flag values, one parser per command), ``inputs`` (bit strings, vector files,
  overrides), ``progress``;
- ``benchmarks/``: what ``cotproof bench`` runs, each in its own process.
"""
