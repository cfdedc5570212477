"""experiment.json as a typed, frozen value: what every stage reads of the experiment.

:class:`ExperimentDoc` holds the document's fields under their JSON names and
the rules derived from them, stated once: the targets analysed, the grid
chunks and permutation chunks of the tasks (counted by
:func:`~mempamal.workdir.layout.chunk_count`). Pure data: it decodes nothing
(estimators, scorers and parameters stay encoded; see
:mod:`mempamal.experiment.encoding`) and imports no scikit-learn.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .files import WRITTEN_BY_WRITE, read_json, reading
from .layout import EXPERIMENT


def chunk_ranges(n: int, size: int) -> list[range]:
    """The items of each chunk of ``size`` among ``n``, in order: ``chunk_count(n, size)`` ranges."""
    return [range(start, min(start + size, n)) for start in range(0, n, size)]


@dataclass(frozen=True)
class ExperimentDoc:
    """The experiment document (experiment.json), field by field.

    ``from_json(d).to_json() == d`` for every document ``Experiment.write`` writes,
    keys in the same order: the file's format is the dict's. Keys this version does
    not know are kept in ``extra`` and written back after the others.

    Attributes
    ----------
    format, mempamal_version : str
        The document's format tag and the version that wrote it.
    estimator, scoring : dict
        The encoded estimator and ``{metric: encoded scorer}``.
    refit : str
        The metric that selects the parameters.
    error_score : Any
        The encoded ``error_score``.
    search : {"grid", "random"} or None
        The inner search (None: a plain cross-validated score).
    candidates : list of dict or None
        The encoded parameter settings, in ParameterGrid (or ParameterSampler) order.
    n_outer, n_inner : int, list of int or None
        Outer folds, and inner folds of each outer fold (None without a search).
    per_target, n_targets : bool, int or None
        Whether each column of y is analysed apart, and how many columns.
    params : dict or None
        Where each per-sample parameter goes (see :mod:`mempamal.experiment.routing`).
    data : dict or None
        The data files: ``{"X": path, "y": path, "groups": path or None, "params.<name>": path}``.
    fingerprint : str or None
        The digest of the experiment, its data and folds that every output records.
    """

    format: str
    mempamal_version: str
    estimator: dict
    estimator_repr: str
    is_classifier: bool
    scoring: dict
    refit: Any
    error_score: Any
    search: str | None
    candidates: list[dict] | None
    n_candidates: int
    grid_chunk_size: int
    n_chunks: int
    cv: str
    inner_cv: str | None
    n_outer: int
    n_inner: list[int] | None
    n_samples: int
    folds: str
    per_target: bool
    n_targets: int | None
    n_permutations: int
    permutation_random_state: int | None
    permutation_chunk_size: int
    n_permutation_chunks: int
    permutations: str | None
    # False: the splitters ignore y, every permutation has y's folds, no permuted_folds/ file exists.
    permuted_folds: bool = True
    # Whether the analyses are fitted together as columns of one y, why, and their chunks
    # (see mempamal.experiment.stacking); None: a document without it (one analysis at a time).
    stacking: dict | None = None
    params: dict | None = None
    packages: list[str] = field(default_factory=list)
    fingerprint: str | None = None
    data: dict | None = None
    extra: dict = field(default_factory=dict)

    # Written only when set, as Experiment.write writes them (a document before its fingerprint
    # and data files, or without per-sample params, has no such key).
    _OPTIONAL = ("params", "fingerprint", "data", "stacking")

    # -- JSON ----------------------------------------------------------------------

    @classmethod
    def from_json(cls, doc: dict) -> "ExperimentDoc":
        """The value of a parsed experiment.json.

        Raises
        ------
        ValueError
            When a field is missing (a document of another version: write the experiment again).
        """
        names = [f.name for f in dataclasses.fields(cls) if f.name != "extra"]
        missing = [n for n in names if n not in doc and n not in cls._OPTIONAL and n not in ("packages", "permuted_folds")]
        if missing:
            raise ValueError(f"{EXPERIMENT}: no {', '.join(missing)} (format {doc.get('format')!r}); "
                             f"{WRITTEN_BY_WRITE}")
        known = {n: doc[n] for n in names if n in doc}
        return cls(**known, extra={k: v for k, v in doc.items() if k not in known})

    def to_json(self) -> dict:
        """The document as a dict of JSON values, in experiment.json's order of keys."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or (f.name in self._OPTIONAL and value is None):
                continue
            out[f.name] = value
        out.update(self.extra)
        return out

    @classmethod
    def read(cls, workdir: str | os.PathLike) -> "ExperimentDoc":
        """Read ``workdir``'s experiment.json (an InputFileError naming the file when it cannot be)."""
        path = Path(workdir) / EXPERIMENT
        with reading(path, WRITTEN_BY_WRITE):
            return cls.from_json(read_json(path))

    # -- derived rules ----------------------------------------------------------------

    @property
    def with_search(self) -> bool:
        """Whether each outer fold selects its parameters by an inner search."""
        return self.search is not None

    @property
    def targets(self) -> list[int | None]:
        """The targets analysed apart (``per_target``: the columns of y), or ``[None]``: y as a whole."""
        return list(range(self.n_targets)) if self.per_target else [None]

    def grid_chunk(self, chunk: int) -> range:
        """The candidates a map task of grid chunk ``chunk`` fits (``grid_chunk_size`` of them)."""
        start = chunk * self.grid_chunk_size
        return range(start, min(start + self.grid_chunk_size, self.n_candidates))

    @property
    def stacked(self) -> bool:
        """Whether the analyses (targets, permutations) are fitted together as the columns of one y."""
        return bool(self.stacking and self.stacking.get("stacked"))

    @property
    def column_chunks(self) -> list[range]:
        """The analyses each columns task fits, chunk by chunk (stacked experiments)."""
        return chunk_ranges(self.stacking["n_analyses"], self.stacking["chunk_size"])

    @property
    def permutation_chunks(self) -> list[range]:
        """The permutations each permute task analyses, chunk by chunk (``n_permutation_chunks`` ranges)."""
        return chunk_ranges(self.n_permutations, self.permutation_chunk_size)
