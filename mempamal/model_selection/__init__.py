"""scikit-learn's model-selection functions, computed by mempamal: change one import.

::

    from mempamal.model_selection import cross_validate, permutation_test_score

    cross_validate(GridSearchCV(pipe, grid, cv=5), X, y, cv=5, n_jobs=2)
    score, permutation_scores, pvalue = permutation_test_score(GridSearchCV(pipe, grid), X, y,
                                                               n_permutations=100)

Same signatures and return values as scikit-learn's (equal to 1e-12), plus ``backend=`` and
its options, ``progress=`` and ``workdir=``. A ``GridSearchCV`` or ``RandomizedSearchCV``
estimator becomes the nested analysis, its inner fits mempamal's tasks. Without
``workdir=``, the experiment is written in a cache folder (:func:`cache_dir`) under a
name derived from the experiment and the data: the same call again resumes an interrupted
run, or returns a finished one at once. :func:`list_cache` and :func:`clear_cache` manage it.
"""
from ._validation import cross_val_predict, cross_val_score, cross_validate, permutation_test_score
from .cache import CacheEntry, cache_dir, clear_cache, list_cache

__all__ = ["cross_validate", "cross_val_score", "cross_val_predict", "permutation_test_score",
           "cache_dir", "list_cache", "clear_cache", "CacheEntry"]
