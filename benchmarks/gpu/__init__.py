"""The sections of ``benchmarks/gpu_check.py`` (issue 21, item 5), one module each; no Ray, MLflow or Optuna.

``budget`` runs a section under its wall-clock budget and records its warnings; ``steps`` times the training
step of every loss family and counts its host synchronisations; ``solver`` compares the device solver with the
CPU one; ``trial`` is the process one packed trial runs in, ``packed`` starts such trials together (packing and
the paper-protocol reproduction); ``determinism`` repeats short runs; ``markdown`` writes the summary.
"""
