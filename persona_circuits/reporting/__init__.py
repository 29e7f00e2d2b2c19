"""The reporting wing: ``REPORT.md`` (:mod:`.report`, one module per section) and the figures
(:mod:`.figures`, one module per topic), both drawn from the typed results of
:mod:`persona_circuits.results` only.

Imports run one way: the study writes results; the report and the figures read them. Nothing here imports
:mod:`persona_circuits.study`, and the figures never import the report (what both need, such as labels and
which LoRA runs changed the model, lives in :mod:`.labels`). This package's ``__init__`` imports nothing,
so importing the figures does not load the report and the report does not load matplotlib.
"""
