"""The main job: ``persona-circuits reproduce`` runs the whole study and writes results, report, figures.

For every bundled persona pair (and, with ``--data-root``, the paper's three AI-persona tasks):
calibration (one pass: per-text statistics and residual features), masks of every method, every
baseline (dense, persona prompt, RAG, random mask, LoRA fine-tuning) for both poles with their pole
contrast on every held-out item, the headline (effect-damage curves of every method with their null
draws, and the matched-damage table with paired comparisons to prompt and steering), and the per-set analyses (sparsity, overlap, probes against lexical
baselines, split-half reliability of the pole difference, neutral-text decoding of masks and prompts).
On one analysis set it also runs the ablations, the bootstrap stability, the sparsity and
calibration-size sweeps and the general-capability checks. Every stage is cached under
``DIR/cache`` by a content hash (model, data, stage settings), so an interrupted run resumes.

Where each part lives:

* :mod:`.plan` - :class:`StudyConfig` (full and ``--quick`` sizes), the persona sets, the data root;
* :mod:`.state` - :class:`Study`: output folder (claimed or resumed), stage cache, timings;
* :mod:`.stages` - one persona set: calibration, masks, conditions, contrasts, representation analyses;
* :mod:`.headline` - one persona set's effect-damage curves and matched-damage table;
* :mod:`.analysis_set` - ablations, stability, sweeps, capability on the analysis set;
* :mod:`.run` - :func:`run_study`: all stages, then ``results.json``, ``REPORT.md`` (:mod:`..report`)
  and the figures (:mod:`..plots`);
* :mod:`.command` - the ``reproduce`` sub-command (imported by the CLI; it imports nothing from it).
"""

from .analysis_set import run_analysis_set
from .command import add_reproduce_parser, cmd_reproduce
from .plan import AI_TASKS, LATER_DEFAULTS, MAIN_METHODS, STUDY_FILE, StudyConfig, StudyError, check_data_root, persona_sets
from .run import run_study
from .stages import representation_analyses, run_set
from .state import Study

__all__ = ["AI_TASKS", "LATER_DEFAULTS", "MAIN_METHODS", "STUDY_FILE", "Study", "StudyConfig", "StudyError",
           "add_reproduce_parser", "check_data_root", "cmd_reproduce", "persona_sets", "representation_analyses",
           "run_analysis_set", "run_set", "run_study"]
