"""The projection gate's analyses per persona set and across sets (:mod:`persona_circuits.analysis.gate`).

Per set (stage ``gate-analysis``, run where the set has the gate's headline rows): where the real pair's selected
weights sit, each pole's selected count, fraction and efficiency ratio, and the overlap of the real sets with the
sets selected again from each of ``matched_draws`` label-swapped draws of its own seeds (``nulls.swap``; the gate's
own null inputs: the draw's pseudo-pole signatures and all-layer directions). Across sets (in memory, after every set): the overlap of
two personas' real sets against that of their null draws' sets, draw by draw (the first :data:`CROSS_DRAWS`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..analysis.gate import GateSelections
from ..results import GateAnalysis, GateCrossPair, to_plain
from .config import SETTINGS
from .dials import CURVE_GRIDS, DIAL_SETTINGS, dials_of
from .setup import SetRun
from .stage import stage
from .state import Study

#: Null draws per set kept in memory for the cross-persona overlap (packed sets: 2 x 4.6 MB each on the default model).
CROSS_DRAWS = 2


@dataclass
class GateRun:
    """A set's gate analysis: its record (``sets.<set>.gate``) and the packed selected sets of the real pair and
    of the first :data:`CROSS_DRAWS` null draws, kept for the cross-persona overlap."""

    analysis: GateAnalysis
    selections: GateSelections

    def to_store(self) -> dict:
        """The stored form (``torch.save``): the record's plain data, the packed sets as tensors."""
        from ..analysis.gate import as_bits

        def bits(d):
            return {p: as_bits(b) for p, b in d.items()}

        return {"summary": to_plain(self.analysis),
                "bits": {"real": bits(self.selections.real), "null": [bits(n) for n in self.selections.null]}}

    @classmethod
    def from_store(cls, d: dict) -> "GateRun":
        def arrays(x):
            return {p: t.numpy() for p, t in x.items()}

        return cls(GateAnalysis.from_dict(d["summary"], "gate"),
                   GateSelections(real=arrays(d["bits"]["real"]), null=[arrays(n) for n in d["bits"]["null"]]))


def gate_enabled(study: Study) -> bool:
    """Whether the study measures the projection gate (a matched method with a curve grid)."""
    h = study.cfg.headline
    return "projection-gate" in h.matched_methods and bool(study.cfg.get(CURVE_GRIDS["projection-gate"]))


@stage("gate-analysis", settings=(*DIAL_SETTINGS, SETTINGS.nulls.matched_draws, SETTINGS.nulls.swap), store="torch", version=2,
       result=GateRun)
def gate_analysis(study: Study, *, run: SetRun) -> GateRun:
    """Where the real pair's selected weights sit, each pole's selection, and its overlap with the sets selected
    from ``nulls.matched_draws`` label-swapped draws (see the module docstring)."""
    from ..analysis.gate import gate_layout, gate_overlap, gate_summary, packed_selection

    dials = dials_of(study, run)
    real = dials.gate_masks(run.sigs, run.directions)
    real_bits = {p: packed_selection(m) for p, m in real.items()}
    k = study.cfg.nulls.matched_draws
    null_bits = []
    for i in range(k):  # each draw its own seed (SetRun.draw_seed), selected again from its directions
        draw = run.null_draw(run.draw_seed("gate-analysis", i))
        null_bits.append({p: packed_selection(m) for p, m in dials.gate_masks(draw.sigs, draw.directions).items()})
    analysis = GateAnalysis(null_draws=k, layout=gate_layout(real), poles=gate_summary(real),
                            overlap=gate_overlap(real_bits, null_bits))
    return GateRun(analysis, GateSelections(real=real_bits, null=null_bits[:CROSS_DRAWS]))


def cross_set_overlap(kept: dict[str, GateSelections]) -> list[GateCrossPair]:
    """The cross-persona overlap of the sets kept by :func:`gate_analysis` (``{set: its selections}``)."""
    from ..analysis.gate import cross_overlap

    return cross_overlap(kept)
