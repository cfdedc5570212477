"""The tasks: what runs inside one ``mempamal task`` command.

- :mod:`~mempamal.tasks.context`: what a task reads (the experiment document, data, folds, inputs);
- :mod:`~mempamal.tasks.fit`: fit and score, select, refit and test (with pipeline prefix reuse,
  :mod:`~mempamal.tasks.pipeline_cache`);
- :mod:`~mempamal.tasks.stages`: the map, refit and permute stages; :mod:`~mempamal.tasks.gather`:
  the gather stage;
- :mod:`~mempamal.tasks.runtime`: running a task (``run_task(workdir, task_id)``), its log and running
  record, and batches of tasks in one process (``run_batch``).
"""
from .runtime import run_batch, run_task

__all__ = ["run_task", "run_batch"]
