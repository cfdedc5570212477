"""Permutation inference: permutations of the samples drawn as scikit-learn draws them, the
folds of each permuted y, and p-values, uncorrected and family-wise corrected over
targets by the maximum statistic (max-T).

The permutations are drawn once, at write(), in ``permutation_test_score``'s order;
their folds are computed then too (a stratified splitter depends on y), so that a
task only reads them and a bad permutation is refused before anything runs.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from ..workdir.document import chunk_ranges
from ..workdir.layout import chunk_count, permutation_prefix, permuted_folds
from .folds import check_same_counts, column, compute_folds, count_folds, fold_arrays_of, prefixed, same_folds


def permutation_indices(n_samples: int, groups, n_permutations: int, random_state) -> np.ndarray:
    """(n_permutations, n_samples) row indices: ``y[indices[p]]`` is permutation ``p`` of y.

    The same sequence as ``permutation_test_score(..., random_state=random_state)``: one
    RandomState, and within each group when ``groups`` is given (its ``_shuffle``).
    """
    from sklearn.utils import check_random_state

    rng = check_random_state(random_state)
    dtype = np.int32 if n_samples < 2**31 else np.int64
    out = np.empty((n_permutations, n_samples), dtype=dtype)
    for p in range(n_permutations):
        if groups is None:
            out[p] = rng.permutation(n_samples)
        else:
            indices = np.arange(n_samples)
            for group in np.unique(groups):
                mask = groups == group
                indices[mask] = rng.permutation(indices[mask])
            out[p] = indices
    return out


def draw_permutations(estimator, cv, inner_cv, X, y, groups, targets: list[int | None],
                      fold_arrays: dict[str, np.ndarray], *, n_permutations: int, random_state,
                      chunk_size: int, ignore_y: bool = False
                      ) -> tuple[np.ndarray | None, dict[str, dict[str, np.ndarray]]]:
    """The permutation indices, and the permuted folds per file (None and {} without permutations).

    A file holds the folds of one target and chunk of permutations, and only those that differ
    from the unpermuted y's (``fold_arrays``): a splitter that ignores y stores nothing. Computed
    at write() so that a permuted y that cannot be split is refused before anything runs.
    ``ignore_y``: the splitters ignore y and split alike every time: no permuted y is split and no
    file is written (experiment.json's ``permuted_folds`` is False).
    """
    if not n_permutations:
        return None, {}
    indices = permutation_indices(y.shape[0], groups, n_permutations, random_state)
    if ignore_y:
        return indices, {}
    permuted: dict[str, dict[str, np.ndarray]] = {}
    for t in targets:
        observed = fold_arrays_of(fold_arrays, t)
        y_t = column(y, t)
        for k, members in enumerate(chunks(n_permutations, chunk_size)):
            arrays: dict[str, np.ndarray] = {}
            for p in members:
                where = (f" (permutation {p} of y{'' if t is None else f', target {t}'}; "
                         f"permutation_random_state={random_state}; a permutation moves samples "
                         "between classes of a group or fold: if fewer splits do not suit, "
                         "try another permutation_random_state)")
                split = compute_folds(estimator, cv, inner_cv, X, y_t[indices[p]], groups, where)
                check_same_counts(count_folds(split), count_folds(observed), where)
                if not same_folds(split, observed):
                    arrays.update(prefixed(split, permutation_prefix(p)))
            permuted[permuted_folds(t, k)] = arrays
    return indices, permuted


def chunks(n_permutations: int, chunk_size: int) -> Iterator[range]:
    """The permutations of each permutation task, chunk by chunk (the rule of
    :attr:`~mempamal.workdir.document.ExperimentDoc.permutation_chunks`)."""
    yield from chunk_ranges(n_permutations, chunk_size)


def default_chunk_size(n_permutations: int) -> int:
    """Permutations per task: about a hundred tasks per target and outer fold at most, so that
    1,000 permutations of 20 targets in 5 folds stay ten thousand tasks, each several analyses long."""
    return max(1, chunk_count(n_permutations, 100))


def pvalues(scores: np.ndarray, permutation_scores: np.ndarray) -> np.ndarray:
    """``(count(permutation_scores >= score) + 1) / (N + 1)`` per target, as permutation_test_score.

    scores: (n_targets,); permutation_scores: (n_targets, N).
    """
    n = permutation_scores.shape[-1]
    return (np.sum(permutation_scores >= scores[:, None], axis=-1) + 1.0) / (n + 1)


def pvalues_max_t(scores: np.ndarray, permutation_scores: np.ndarray) -> np.ndarray:
    """Family-wise error corrected p-values by the maximum statistic over targets.

    ``pvalues_fwer[j] = (#{p : max_k permutation_scores[k, p] >= scores[j]} + 1) / (N + 1)``.
    """
    maxima = permutation_scores.max(axis=0)
    return (np.sum(maxima[None, :] >= scores[:, None], axis=-1) + 1.0) / (permutation_scores.shape[-1] + 1)
