"""The main job: ``persona-circuits reproduce`` runs the whole study and writes results, report, figures.

For every persona set (the bundled MBTI axes, with ``--data-root`` the paper's three AI-persona tasks, or
any sets named or given by path): calibration (one pass: per-text statistics and residual features), masks
of every method, every baseline (dense, persona prompt, RAG, random mask, LoRA) with its pole contrast and
damage on every held-out item, the headline (effect-damage curves of every method with their null draws,
and the matched-damage table with damage-matched label-swapped nulls on every held-out item and paired
comparisons to prompt and steering), and the per-set analyses. On one analysis set it also runs the
ablations, the bootstrap stability, the sweeps and the general-capability checks. After every set: the
verdicts (symmetry check of the nulls, null tests, Holm's adjustment). Every stage is a declared,
cached function (:mod:`.stage`), so an interrupted run resumes.

Where each part lives:

* :mod:`.config` - :class:`StudyConfig` in sections, with the ``full`` and ``quick`` presets;
* :mod:`.stage` - the ``@stage`` declaration: cache keys from declared settings and inputs;
* :mod:`.state` - :class:`Study`: output folder (claimed, locked, resumed), stage cache, references, timings;
* :mod:`.sets` - the persona sets of a run and their identities;
* :mod:`.setup` - one set's calibration, signatures, nulls, masks and steering (:class:`SetRun`);
* :mod:`.conditions` - every condition's scores, accuracies, LoRA, contrasts and damage;
* :mod:`.headline`, :mod:`.matched` - effect-damage curves and the matched-damage table;
* :mod:`.representation` - probes, similarity, neutral-text decoding;
* :mod:`.analysis_set` - ablations, stability, sweeps, capability on the analysis set;
* :mod:`.verdicts` - null tests and multiple comparisons over the whole table;
* :mod:`.run` - :func:`run_study`: every stage, then ``results.json`` (:mod:`persona_circuits.results`),
  ``REPORT.md`` and the figures (:mod:`persona_circuits.reporting`);
* :mod:`.command` - the ``reproduce`` sub-command (imported by the CLI; light at import).

Names are imported on first use, so ``from persona_circuits.study import add_reproduce_parser`` does not
load torch.
"""

from __future__ import annotations

import importlib

_WHERE = {"StudyConfig": "config", "StudyError": "config", "AI_TASKS": "config", "MAIN_METHODS": "config",
          "Study": "state", "STUDY_FILE": "state", "StudySet": "sets", "study_sets": "sets", "check_data_root": "sets",
          "SetRun": "setup", "prepare_set": "setup", "run_set": "run", "run_study": "run",
          "run_analysis_set": "analysis_set", "apply_verdicts": "verdicts", "stage": "stage",
          "add_reproduce_parser": "command", "cmd_reproduce": "command"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
