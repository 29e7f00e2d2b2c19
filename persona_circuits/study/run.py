"""Run the whole study: every persona set's stage, the analysis-set stage, then results.json,
REPORT.md and the figures."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

from .._io import atomic_write_json
from .analysis_set import run_analysis_set
from .plan import StudyConfig, check_data_root, persona_sets
from .stages import run_set
from .state import Study, claim_output, log
from .verdicts import apply_verdicts


def run_study(model, out: str | Path, *, cfg: StudyConfig, data_root: str | Path | None = None,
              progress: bool = True, command: str = "") -> dict:
    """Run the whole study with a loaded model; write results.json, REPORT.md and figures/ under ``out``."""
    from ..models import architecture_fingerprint, get_model_id
    from ..reporting.figures import write_figures
    from ..reporting.report import write_report
    from ..results import paper_numbers

    t0 = time.perf_counter()
    root = check_data_root(str(data_root) if data_root is not None else None)
    out = Path(out)
    identity = {"model": get_model_id(model), "fingerprint": architecture_fingerprint(model),
                # options left unset (None) are omitted, so adding an option keeps old studies resumable
                "config": {k: v for k, v in cfg.to_dict().items() if v is not None},
                "data_root": str(root) if root else None, "format": 1}
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    if dtype != "float32":  # cached scores depend on it (float32 left out: older studies stay resumable)
        identity["dtype"] = dtype
    claim_output(out, identity)
    study = Study(model, out, cfg, root, progress)
    torch.manual_seed(cfg.seed)
    sets = persona_sets(cfg, root)
    analysis = None
    for name, ps, fam in sets:
        r = run_set(study, name, ps, fam)
        if name == cfg.analysis_set:
            analysis = run_analysis_set(study, name, ps, r)
        study.results["sets"][name] = {k: v for k, v in r.items() if not k.startswith("_")}
        del r
    study.results["analysis"] = analysis
    apply_verdicts(study.results)
    study.results["meta"] = {
        **identity, "command": command, "quick": cfg.quick, "package_version": __import__("persona_circuits").__version__,
        "torch": torch.__version__, "dtype": dtype,
        "python": platform.python_version(), "machine": platform.machine(),
        "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - t0, 1),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    study.results["paper"] = paper_numbers(root)
    atomic_write_json(out / "results.json", study.results)
    write_figures(study.results, out / "figures")
    write_report(study.results, out / "REPORT.md")
    log(f"wrote {out / 'results.json'}, {out / 'REPORT.md'} and {out / 'figures'} in {time.perf_counter() - t0:.0f} s")
    return study.results
