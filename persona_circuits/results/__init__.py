"""The results contract: typed records of everything the study writes to ``results.json``, read back by
the report and the figures (which never import the study).

    import persona_circuits.results as r
    res = r.load_results("figures/results.json")        # StudyResults; a version-1 file is upgraded
    res.sets["power"].headline.matched[0].tested_shift

Modules: :mod:`._record` (the base class: ``to_dict`` / ``from_dict`` with type checks), :mod:`.records`
(choices, contrasts, curve points, matched-damage rows, null draws, reference points, the headline),
:mod:`.analyses` (per-set analyses and the analysis set), :mod:`.types_atlas` (the 16 types, the atlas), :mod:`.fits` (strength searches and the stages' draws),
:mod:`.study` (:class:`StudyResults`, loading and writing), :mod:`.upgrade` (the schema's versions: the current
one, and every older file brought to it), :mod:`.constants` (set order, AI tasks, main methods), :mod:`.paper` (the
paper's numbers).
"""

from ._record import Record, ResultsError, from_plain, to_plain
from .analyses import (Accuracy, AnalysisSet, BlockOverlap, BlockSparsity, Capability, CapabilityRow, Decoding, DecodingLayer,
                       GeneralChoice, LoraRun, MaskOverlap, NullGate, OverlapStats, Perplexity, ProbeBaseline,
                       LayerProbe, ProbeLayer, Probes, Removal, RemovalRow, Restore, RestoreRow, Similarity, SimilarityLayer,
                       SparsityProfile, StabilityRow, SteeringChoice, SteeringTrial, Sweep, SweepRow)
from .constants import AI_TASKS, DEFAULT_TEXT_STAT, MAIN_METHODS, RELEASED_SPARSITY, study_order
from .fits import MatchedDraw, StrengthFit, TypePairDraw
from .gate import GateAnalysis, GateCrossPair, GateLayoutRow, GateOverlap, GatePole
from .paper import Paper, paper_numbers
from .primary import MethodCalibration, PlaceboRate, PrimaryTest, TargetCalibration
from .records import (DAMAGE_MATCHED, STRENGTH_MATCHED, ChoiceRow, Contrast, CurvePoint, Damage, DamageMatchedNull, DamageTexts,
                      EstimatedCenter, Headline, HeldOutDamage, MatchedRow, NullDraws, NullSymmetry, PairedDiff, PaperTableRow,
                      RandomDirectionNull, ReferencePoint, Shift, StrengthMatchedNull)
from .study import (Meta, MultipleComparison, RunSettings, SetResults, ShardMeta, StudyResults, load_results,
                    write_results)
from .shard import AxisShifts, CrossResults, Shard, ShardCross, ShardInfo
from .types_atlas import (Atlas, AtlasPair, AxisInterference, OverlapMatrix, SteeringCosines, TestFamily,
                          TypeAxisContrast, TypeAxisTest, TypeRow, TypesResult)
from .upgrade import SCHEMA_VERSION, upgrade

__all__ = ["Accuracy", "AI_TASKS", "AxisShifts", "AnalysisSet", "Atlas", "AtlasPair", "AxisInterference", "BlockOverlap", "BlockSparsity",
           "Capability", "CapabilityRow", "ChoiceRow", "Contrast", "CrossResults", "CurvePoint", "Damage", "DAMAGE_MATCHED", "DamageMatchedNull", "DamageTexts",
           "Decoding", "DecodingLayer", "DEFAULT_TEXT_STAT", "EstimatedCenter", "from_plain", "GateAnalysis", "GateCrossPair",
           "GateLayoutRow", "GateOverlap", "GatePole", "GeneralChoice", "Headline", "HeldOutDamage", "load_results", "LoraRun",
           "MAIN_METHODS", "MaskOverlap", "MatchedDraw", "MatchedRow", "Meta", "MethodCalibration", "MultipleComparison", "NullDraws", "NullGate", "NullSymmetry",
           "OverlapMatrix", "OverlapStats", "PairedDiff", "Paper", "paper_numbers", "PaperTableRow", "Perplexity",
           "LayerProbe", "PlaceboRate", "PrimaryTest", "ProbeBaseline", "ProbeLayer", "Probes", "RandomDirectionNull", "Record", "ReferencePoint", "RELEASED_SPARSITY",
           "Removal", "RemovalRow", "Restore", "RestoreRow", "ResultsError", "RunSettings", "SCHEMA_VERSION", "SetResults", "Shard", "ShardCross", "ShardInfo", "ShardMeta",
           "Shift", "Similarity", "SimilarityLayer", "SparsityProfile", "StabilityRow", "SteeringChoice", "SteeringCosines",
           "SteeringTrial", "STRENGTH_MATCHED", "StrengthFit", "StrengthMatchedNull", "study_order", "StudyResults", "Sweep", "SweepRow",
           "TargetCalibration", "TestFamily", "to_plain", "TypeAxisContrast", "TypeAxisTest", "TypePairDraw", "TypeRow", "TypesResult", "upgrade", "write_results"]
