"""Progress of a run: done / failed / total, as a bar (tqdm.auto: a widget in
Jupyter, text in a terminal) that every back-end feeds the same way."""
from __future__ import annotations

from ..workdir.status import DONE, FAILED


class Progress:
    """Counts task outcomes and shows them; ``enabled=False`` shows nothing."""

    def __init__(self, total: int, enabled: bool = True, desc: str = "mempamal") -> None:
        self.total = total
        self.done = 0
        self.failed = 0   # tasks that did not complete: failed or not run
        self.not_run = 0  # of which not run because a task they need failed
        self._bar = None
        if enabled and total:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="task")

    def update(self, status: str) -> None:
        """Record one task's outcome (DONE, FAILED or NOT_RUN)."""
        if status == DONE:
            self.done += 1
        else:
            self.failed += 1
            self.not_run += status != FAILED
        if self._bar is not None:
            postfix = f"failed={self.failed - self.not_run}" + (f", not run={self.not_run}" if self.not_run else "")
            self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
