"""Knowledge distillation: a small lmlab Transformer trained on a teacher's soft targets.

* :mod:`lmlab.distill.loss`: temperature-scaled KL over the teacher's top-k plus a remainder
  bucket, mixed with the hard-label cross-entropy;
* :mod:`lmlab.distill.targets`: the teacher's top-k targets over the training windows,
  computed once and cached in safetensors shards;
* :mod:`lmlab.distill.objective`: that loss and those windows as a trainer objective;
* :mod:`lmlab.distill.init`: student embeddings projected from the teacher's (PCA);
* :mod:`lmlab.distill.runner`: ``lmlab distill``, from a teacher and a corpus to a run.
"""
