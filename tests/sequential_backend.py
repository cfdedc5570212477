"""A small real back-end and a real export format, registered by the tests as plug-ins would be.

``SequentialBackend`` runs the tasks one after the other in this process (the code of
their commands, :func:`mempamal.tasks.run_task`); ``export_makefile`` writes the workflow
as a Makefile that ``make -j N`` runs.
"""
from __future__ import annotations

from pathlib import Path

from mempamal.backends import DONE, FAILED, NOT_RUN, Backend, Option, TaskOutcome


class SequentialBackend(Backend):
    """Run the tasks one at a time in this process.

    Parameters
    ----------
    record : str, default=None
        A file to which the name of each task is appended as it starts.
    """

    name = "sequential"
    options = (Option("record", str, "a file to which each task's name is appended as it starts"),)

    def __init__(self, record: str | None = None) -> None:
        self.record = record

    def execute(self, workdir, workflow, tasks, progress):
        from mempamal.tasks import run_task

        outcomes = {}
        for task in tasks:  # in dependency order
            failed = [d for d in task.dependencies if d in outcomes and outcomes[d].status != DONE]
            if failed:
                outcomes[task.name] = TaskOutcome(NOT_RUN, f"{failed[0]} did not complete")
            else:
                if self.record is not None:
                    with open(self.record, "a") as f:
                        f.write(task.name + "\n")
                try:
                    run_task(workdir, task.id, task.log)
                    outcomes[task.name] = TaskOutcome(DONE)
                except Exception as e:
                    outcomes[task.name] = TaskOutcome(FAILED, f"{type(e).__name__}: {e}")
            progress.update(outcomes[task.name].status)
        return outcomes


def export_makefile(workdir: Path, workflow, output: Path) -> None:
    """A Makefile: one phony target per task, its prerequisites the tasks it depends on."""
    names = [t.name for t in workflow.tasks]
    lines = [f".PHONY: all {' '.join(names)}", f"all: {' '.join(names)}"]
    for task in workflow.tasks:
        lines.append(f"{task.name}: {' '.join(task.dependencies)}".rstrip())
        # make expands $: a workdir or argument holding one must reach the shell intact.
        lines.append("\t" + task.shell_command(workdir).replace("$", "$$"))
    output.write_text("\n".join(lines) + "\n")

