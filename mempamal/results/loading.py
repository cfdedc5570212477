"""Reading a workdir's results: the finished run's results.json and results.npz, or what the tasks
done so far allow (partial results)."""
from __future__ import annotations

import os

from ..workdir.files import load_arrays, read_json
from ..workdir.paths import Workdir
from .partial import gather_partial, missing_tasks
from .results import Results


def load_results(workdir: str | os.PathLike, partial: bool = False) -> Results:
    """Load the results of a workdir whose workflow has completed (or, with ``partial``, what it has so far).

    Parameters
    ----------
    workdir : str or path
        A directory written by :meth:`mempamal.Experiment.write` (or ``mempamal generate``)
        and run to its end (:func:`mempamal.run`, ``mempamal run``, an export).
    partial : bool, default=False
        Before the workflow ends, give what the finished tasks allow, marked ``partial``: the outer
        folds whose refit is done (scores, parameters, predictions) and the permutations done so far
        with their p-values (NaN until every outer fold is done). Once it has ended: the results.

    Returns
    -------
    results : Results
        Its scores, selected parameters, inner searches, predictions and, with
        permutations, p-values.

    Raises
    ------
    FileNotFoundError
        When the run has not finished (its final task has not written results.json), without
        ``partial``: naming the tasks still missing.

    See Also
    --------
    mempamal.Experiment : Write a workdir.
    mempamal.run : Run its tasks.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal import Experiment, load_results, run
    >>> X, y = load_iris(return_X_y=True)
    >>> workdir = Experiment(LogisticRegression(), cv=3, scoring="accuracy").write(X, y, "runs/logit")
    >>> report = run(workdir, n_jobs=2, progress=False)
    >>> res = load_results("runs/logit")
    >>> res.test_scores["accuracy"].round(2)
    array([0.98, 0.96, 0.98])
    """
    paths = Workdir.of(workdir)
    path = paths.results_json
    if not path.exists():
        if not paths.experiment_json.exists():
            raise FileNotFoundError(f"{path}: no results yet, and no experiment here ({paths.experiment_json.name}); "
                                    "write one first (Experiment.write or `mempamal generate`)")
        experiment = paths.read_experiment()
        if partial:
            doc, arrays = gather_partial(paths.root, experiment)
            return Results(paths.root, doc, arrays, experiment)
        raise FileNotFoundError(f"{path}: no results yet: {missing_tasks(paths.root)}; run the workflow first "
                                f"(mempamal.run or `mempamal run {workdir}`), or look at the folds done so far "
                                "with load_results(..., partial=True) (`mempamal results --partial`)")
    doc = read_json(path)
    _, arrays = load_arrays(paths.results_npz)
    return Results(paths.root, doc, arrays, paths.read_experiment())
