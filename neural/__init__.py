"""Weights and execution. Never imports z3; imports grammar, and torch only where a module says so.

Two subpackages share the decoder and the CVP format:
- shared, here: ``config`` (the architecture and the state-dict names), ``model`` (the one torch decoder),
  ``checkpoint`` (safetensors on disk, no pickle), ``cvp`` (the one CVP format), ``tlens`` and ``hf`` (the decoder
  as a TransformerLens bridge and as a Hugging Face GPT-2, and any local causal LM as a function: optional
  dependencies, imported only when asked for), ``prefix_forcing`` (teacher forcing of many reference traces with
  the prompts' shared prefixes computed once, for ``certify``, over any decoder), ``decoding`` (the sessions, the
  one greedy loop and the teacher-forced pass, for a torch decoder or any function from ids to logits),
  ``selected`` (attention gathered at a given key per query, with the dense spot check, in torch and F(e,s)),
  ``streamed`` (a one-layer model's teacher-forced pass over a long sequence a block of positions at a time, where
  that attention is licensed: memory that grows with the block, not with length times width);
- ``construction``, the proved construction: ``constructed`` (the typed contract formal proves: Layout, HeadPlan,
  FFNPlan), ``construct`` (fills it from a circuit), ``fp`` and ``finite`` (the paper's F(e,s) arithmetic, and the
  decoder run in it), ``execute`` (a construction run in any arithmetic, checked in one pass), ``selection`` (the
  key each head's code selects: the attention the retrieval lemma licenses);
- ``learning``, the learning experiments: ``tasks`` (the four tasks and their held-out splits), ``runs`` (a run's
  settings, schedule and checkpoint state), ``stacked`` (G decoders as one module), ``train`` (the one training
  loop, over a group), ``prefetch``, ``evaluation`` (scoring a checkpoint), ``profiles``, ``reproduce``,
  ``grouping``, ``grid_results``, ``claims``, ``reproduce_report`` and ``workers`` (the paper's profiles and cells,
  the grid, its groups, its results file, the claims its rows decide, its table and figures, the worker
  processes), ``prompt_space`` (every prompt of a task at a size, indexed).
Neither half imports the other (tests/test_architecture.py).
"""
