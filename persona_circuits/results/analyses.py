"""Records of the per-set analyses (sparsity, overlap, probes, split-half reliability, neutral-text
decoding, steering layer, LoRA runs) and of the analysis set (ablations, stability, sweeps, capability)."""

from __future__ import annotations

from ._record import Record, record
from .records import ChoiceRow, Contrast, Interval


@record
class BlockSparsity(Record):
    """Fraction of weights removed in one block: all prunable layers, attention, MLP."""

    block: int
    all: float
    attn: float
    mlp: float


@record
class SparsityProfile(Record):
    """Fraction of weights a mask removes: overall, per module type (``attn``, ``mlp``, ``attn.q``...), per block."""

    overall: float
    by_module: dict[str, float]
    per_block: list[BlockSparsity]


@record
class OverlapStats(Record):
    """Overlap of two masks: share of entries that differ, and the Jaccard index of the kept weights."""

    difference_rate: float
    jaccard: float


@record
class BlockOverlap(OverlapStats):
    """:class:`OverlapStats` of one block."""

    block: int


@record
class MaskOverlap(Record):
    """Overlap between the two poles' masks of one method, next to the expectation for random masks."""

    overall: OverlapStats
    by_module: dict[str, OverlapStats]
    per_block: list[BlockOverlap]
    random_expectation: OverlapStats


@record
class ProbeBaseline(Record):
    """A lexical baseline of the probes (bag of words, embedding probe) on the same split."""

    test_accuracy: float
    test_accuracy_ci95: Interval
    cv_accuracy: float | None = None
    C: float | None = None
    n_features: int | None = None


@record
class LayerProbe(Record):
    """A layer's linear probe on its own (:func:`~persona_circuits.analysis.probes.layer_probes`): accuracy by
    cross-validation on the training split, on the held-out split, and of the same probe fitted to shuffled training
    labels (the control: chance when the probe learns the labels, not the items)."""

    layer: int
    cv_accuracy: float
    test_accuracy: float
    shuffled_test_accuracy: float
    n_train: int
    n_test: int


@record
class ProbeLayer(Record):
    """A layer's linear probe: held-out accuracy and its paired difference to each baseline."""

    layer: int
    test_accuracy: float
    test_accuracy_ci95: Interval
    cv_accuracy: float
    minus_bag_of_words: float
    minus_bag_of_words_ci95: Interval
    minus_embedding: float
    minus_embedding_ci95: Interval
    informative: bool
    shuffled_test_accuracy: float
    n_train: int | None = None
    n_test: int | None = None


@record
class Probes(Record):
    """Layer probes against the bag-of-words and embedding baselines."""

    layers: list[ProbeLayer]
    bag_of_words: ProbeBaseline
    embedding: ProbeBaseline
    better_baseline: str
    n_informative: int
    n_comparisons: int
    n_train: int
    n_test: int
    n_items: int | None = None
    criterion: str | None = None

    def baseline(self, name: str) -> ProbeBaseline:
        """``bag_of_words`` or ``embedding``."""
        return {"bag_of_words": self.bag_of_words, "embedding": self.embedding}[name]


@record
class SimilarityLayer(Record):
    """Split-half reliability of the pole-difference direction at one layer, with its permutation null."""

    layer: int
    reliability: float
    null_mean: float
    null_p95: float
    p_value: float
    cosine_of_means: float
    reliability_sd: float | None = None
    null_sd: float | None = None


@record
class Similarity(Record):
    """Split-half reliability per layer."""

    layers: list[SimilarityLayer]
    n_splits: int
    n_permutations: int
    n_a: int | None = None
    n_b: int | None = None
    statistic: str | None = None
    null: str | None = None
    note: str | None = None
    seed: int | None = None


@record
class DecodingLayer(Record):
    """Decoding which pole's intervention is active from one layer's hidden states on neutral text."""

    layer: int
    accuracy: float
    accuracy_ci95: Interval
    decodable: bool
    shuffled_accuracy: float


@record
class Decoding(Record):
    """Neutral-text decoding of one pair of interventions."""

    layers: list[DecodingLayer]
    n_decodable: int
    n_texts: int
    max_tokens: int | None = None
    folds: int | None = None
    poles: list[str] | None = None
    criterion: str | None = None


@record
class SteeringTrial(Record):
    """Contrast of steering at one layer and coefficient on the calibration items (layer selection)."""

    layer: int
    coef: float
    contrast: float


@record
class SteeringChoice(Record):
    """The steering layer chosen on calibration items."""

    layer: int
    coef: float | None = None
    table: list[SteeringTrial] | None = None


@record
class LoraRun(Record):
    """One pole's LoRA fine-tuning run: its cost, held-out calibration losses and damage."""

    steps: int
    epochs: int
    tokens: int
    seconds: float
    trainable_parameters: int
    max_epochs: int | None = None
    val_losses: list[float] | None = None
    converged: bool | None = None
    damage_kl: float | None = None
    damage_kl_ci95: Interval | None = None
    trained: bool | None = None
    rank: int | None = None
    lr: float | None = None
    texts: int | None = None
    val_texts: int | None = None
    first_loss: float | None = None
    last_loss: float | None = None
    val_texts: int | None = None
    first_loss: float | None = None
    last_loss: float | None = None


# ---- the analysis set

@record
class NullGate(Record):
    """The null test that gates the restore ablation (the full contrast against label-swapped pairs)."""

    passed: bool
    test: str
    null_draws: int | None = None
    null_threshold: float | None = None
    null_shift_mean: float | None = None
    null_shift_sd: float | None = None
    null_p_value: float | None = None
    null_z: float | None = None
    persona_specific: bool | None = None
    center: str | None = None
    p_value: float | None = None
    detectable_shift: float | None = None
    null_mean_t: float | None = None
    threshold: float | None = None  # a gate given as a threshold on the full contrast


@record
class RestoreRow(Record):
    """Pole contrast with a layer group restored to dense in both masks, as a fraction of the full contrast."""

    restored: str
    n_layers: int
    contrast: Contrast
    fraction_of_full: float
    fraction_ci95: Interval


@record
class Restore(Record):
    """The restore ablation (rows empty when the gate did not pass; ``skipped`` says why)."""

    method: str
    poles: list[str]
    full_contrast: Contrast
    gate: NullGate
    rows: list[RestoreRow]
    skipped: str | None = None
    definition: str | None = None


@record
class RemovalRow(Record):
    """Removal from the dense model at a matched count per row: top contrastive vs random vs pooled Wanda."""

    fraction: float
    removed_total: int
    contrastive_contrast: Contrast
    random_pair_contrast: Contrast
    contrastive_minus_random_pair: float
    contrastive_minus_random_pair_ci95: Interval
    shift_vs_dense: dict[str, Contrast]
    removed_per_layer: dict[str, int] | None = None


@record
class Removal(Record):
    """The removal ablation."""

    poles: list[str]
    rows: list[RemovalRow]
    matched_count_per_row: bool | None = None
    definition: str | None = None


@record
class StabilityRow(Record):
    """Jaccard agreement of masks from bootstrap resamples of the calibration set."""

    method: str
    n_boot: int
    mean_jaccard: float
    min_jaccard: float
    random_jaccard: float
    pairwise_jaccard: list[float]
    sparsity: float | None = None
    n_texts: list[int] | None = None


@record
class SweepRow(Record):
    """One point of a sweep: the pole contrast and each pole's accuracy."""

    contrast: Contrast
    per_pole: dict[str, ChoiceRow]
    sparsity: float | None = None
    calib_size: int | None = None


@record
class Sweep(Record):
    """The sparsity or calibration-size sweep of one method."""

    method: str
    rows: list[SweepRow]
    sparsity: float | None = None
    calib_size: int | None = None


@record
class Perplexity(Record):
    """Perplexity on neutral text."""

    perplexity: float
    mean_nll: float
    mean_nll_ci95: Interval
    n_texts: int | None = None
    n_tokens: int | None = None


@record
class Accuracy(Record):
    """An accuracy with its bootstrap interval."""

    accuracy: float
    accuracy_ci95: Interval


@record
class GeneralChoice(Record):
    """General-knowledge two-way choice: summed and per-token accuracy."""

    n: int
    summed: Accuracy
    length_normalized: Accuracy


@record
class Capability(Record):
    """General capability of a model (with a mask applied, or dense): perplexity and general-choice accuracy."""

    perplexity: Perplexity
    general_choice: GeneralChoice


@record
class CapabilityRow(Capability):
    """General capability of one condition."""

    condition: str


@record
class AnalysisSet(Record):
    """What the study runs on the analysis set only."""

    set: str
    n_items: int
    restore: Restore | None = None
    removal: Removal | None = None
    stability: list[StabilityRow] | None = None
    sparsity_sweep: Sweep | None = None
    calibration_sweep: Sweep | None = None
    capability: list[CapabilityRow] | None = None
