"""Provenance: where an activation signature or a mask comes from.

A signature (:class:`~.statistics.ActivationSignature`) and a mask (:class:`~.build.MaskConfig`) carry the same
six facts about their origin: the model (``model_id`` and the architecture ``fingerprint``), the token selection
the statistics were taken over (``tokens``), the persona pole and dataset, and the hash of the calibration items.
:class:`Provenance` is that one record; both expose it as ``.provenance``, a mask built from a signature takes
its provenance from the signature (:meth:`Provenance.mask_fields`), and every "same model?" check of either goes
through :meth:`Provenance.check_model` / :meth:`Provenance.check_same_model`. The two classes keep their flat
fields (their files and a mask's content identity are unchanged); the record is the shared view of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ModelMismatchError


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """The origin of a signature or a mask.

    Args:
        model_id: the model's name as :func:`~persona_circuits.model.loading.get_model_id` gives it.
        fingerprint: the model's architecture fingerprint (layer names and shapes; what "the same model" means).
        tokens: the token selection the activation statistics were taken over (``"answer"``, ``"all"``, ...);
            ``None`` for a mask built without statistics (random, ablation).
        pole: the persona pole (``None`` for a merged or pole-free object).
        dataset: the persona set's name.
        calibration_hash: content hash of the calibration items (two poles' hashes combined for a pair's masks).
    """

    model_id: str
    fingerprint: str
    tokens: str | None = None
    pole: str | None = None
    dataset: str | None = None
    calibration_hash: str | None = None

    @classmethod
    def of(cls, obj) -> "Provenance":
        """The provenance of any object with these six attributes (a signature, a mask's config)."""
        return cls(model_id=obj.model_id, fingerprint=obj.fingerprint, tokens=obj.tokens, pole=obj.pole,
                   dataset=obj.dataset, calibration_hash=obj.calibration_hash)

    def check_model(self, model_id: str, fingerprint: str, *, what: str = "signature") -> None:
        """Raise :class:`ModelMismatchError` unless this object was recorded on the model of ``fingerprint``."""
        if self.fingerprint != fingerprint:
            raise ModelMismatchError(f"{what} recorded on another model ({self.model_id}); this model is {model_id}")

    def check_same_model(self, other: "Provenance", *, what: str = "signatures") -> None:
        """Raise :class:`ModelMismatchError` unless both come from one model (same id and fingerprint)."""
        if self.fingerprint != other.fingerprint or self.model_id != other.model_id:
            raise ModelMismatchError(f"{what} come from different models "
                                     f"({self.model_id}/{self.fingerprint} vs {other.model_id}/{other.fingerprint})")

    def mask_fields(self) -> dict:
        """The fields a mask built from this signature inherits (``tokens``, ``pole``, ``poles``, ``dataset``,
        ``calibration_hash``; the model's id and fingerprint come from the model the mask is built on)."""
        return {"tokens": self.tokens, "pole": self.pole, "poles": [self.pole] if self.pole else [],
                "dataset": self.dataset, "calibration_hash": self.calibration_hash}
