"""Batched task commands against one command per task and the local back-end's warm workers.

For each case (the nested iris and digits cases of ``nested_cv.py``), the same
workflow written once per mode, then executed on the same N cores, each mode a
fresh process timed whole (interpreter, imports, worker or engine start-up):

- ``local``: ``mempamal run WORKDIR -j N`` (warm loky workers);
- ``soma``: Soma-Workflow light mode (isolated), N jobs at once, tasks in batches (default size);
- ``soma-unbatched``: the same, one job per task (``batch_size=1``; not run by default);
- ``xargs-batched``: the cmd-list export (default batch size for N jobs at once), its lines run
  stage by stage by ``xargs -P N bash -c``;
- ``xargs-unbatched``: the same with one line per task (``batch_size=1``).

Each task may use cores / N BLAS threads in every mode. The modes alternate order
on each repetition; every mode's outer test scores must equal the local back-end's.
Prints median wall times and each mode's ratio to ``local``.

Run::

    python benchmarks/batched_commands.py                       # iris and digits, N=2, 1 repetition
    python benchmarks/batched_commands.py --cases iris --repeat 3 --modes local soma soma-unbatched

Not a test: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]  # run from a checkout without installing; nested_cv's cases
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}

from nested_cv import CASES  # noqa: E402

MODES = ("local", "soma", "soma-unbatched", "xargs-batched", "xargs-unbatched")
DEFAULT_MODES = ("local", "soma", "xargs-batched", "xargs-unbatched")


def write(case_name: str, workdir: Path) -> Path:
    from mempamal import Experiment

    X, y, pipe, grid, outer, inner, scoring = CASES[case_name]()
    return Experiment(pipe, cv=outer, param_grid=grid, inner_cv=inner, scoring=scoring).write(X, y, workdir)


def execute(mode: str, workdir: Path, n_jobs: int) -> None:
    """Run the workflow of ``workdir`` one way, in this process (a fresh one, timed by the parent)."""
    from mempamal import run

    if mode == "local":
        run(workdir, backend="local", n_jobs=n_jobs, progress=False)
    elif mode.startswith("soma"):
        run(workdir, backend="soma-workflow", isolated_light_mode=workdir.parent / f"{workdir.name}-soma",
            n_jobs=n_jobs, batch_size=1 if mode == "soma-unbatched" else None, progress=False)
    else:
        run_cmd_list(workdir, n_jobs, batch_size=1 if mode == "xargs-unbatched" else None)


def run_cmd_list(workdir: Path, n_jobs: int, batch_size: int | None) -> None:
    """Export the cmd-list and run its lines by ``xargs -P n_jobs``, one wave (stage) after the other."""
    from mempamal.export import export
    from mempamal.workdir.workflow import thread_limits

    doc = json.loads(export(workdir, "cmd-list", workdir.parent / f"{workdir.name}-cmds.json",
                            batch_size=batch_size, jobs_at_once=n_jobs).read_text())
    level = {}
    for j in range(len(doc["commands"])):  # lines come in dependency order
        level[j] = 1 + max((level[i] for i, k in doc["dependencies"] if k == j), default=-1)
    env = {**ENV, **thread_limits(max((os.cpu_count() or 1) // n_jobs, 1))}
    for wave in range(max(level.values()) + 1):
        lines = "\n".join(doc["commands"][j] for j in level if level[j] == wave) + "\n"
        subprocess.run(["xargs", "-d", "\n", "-P", str(n_jobs), "-n", "1", "bash", "-c"], input=lines, text=True,
                       env=env, check=True, stdout=subprocess.DEVNULL)


def bench_case(name: str, modes: list[str], n_jobs: int, repeat: int, scratch: Path) -> dict:
    from mempamal import load_results

    times: dict[str, list[float]] = {m: [] for m in modes}
    n_tasks = None
    for r in range(repeat):
        order = modes[r % len(modes):] + modes[:r % len(modes)]  # rotate who goes first
        scores = {}
        for mode in order:
            workdir = write(name, scratch / f"{name}-{mode}-{r}")
            if n_tasks is None:
                from mempamal.workdir.workflow import load_workflow

                n_tasks = len(load_workflow(workdir).tasks)
            start = time.perf_counter()
            subprocess.run([sys.executable, __file__, "execute", mode, str(workdir), str(n_jobs)], env=ENV,
                           check=True)
            times[mode].append(time.perf_counter() - start)
            scores[mode] = load_results(workdir).test_scores
            shutil.rmtree(workdir)
        reference = scores[order[0]]
        for mode, s in scores.items():
            if any(list(s[m]) != list(reference[m]) for m in s):
                raise AssertionError(f"{name}: {mode}'s outer test scores differ from {order[0]}'s")
        print(f"  {name} rep {r + 1}/{repeat}: " + ", ".join(f"{m} {times[m][-1]:.1f}s" for m in modes),
              flush=True)
    return {"case": name, "n_tasks": n_tasks, **{m: statistics.median(v) for m, v in times.items()}}


def main(argv=None) -> None:
    if argv is None and sys.argv[1:2] == ["execute"]:
        _, _, mode, workdir, n_jobs = sys.argv
        execute(mode, Path(workdir), int(n_jobs))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-jobs", type=int, default=2, help="jobs at once in every mode (default 2)")
    parser.add_argument("--cases", nargs="+", choices=["iris", "digits"], default=["iris", "digits"])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(DEFAULT_MODES))
    parser.add_argument("--repeat", type=int, default=1, help="repetitions per case, modes rotating (default 1)")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    print(f"batched commands, n_jobs={args.n_jobs}, {os.cpu_count()} cores, load average {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f}, {args.repeat} repetition(s), median wall times", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="mempamal-bench-"))
    try:
        rows = [bench_case(name, args.modes, args.n_jobs, args.repeat, scratch) for name in args.cases]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'case':<16}" + "".join(f"{m:>17}" for m in args.modes))
    for row in rows:
        label = f"{row['case']} ({row['n_tasks']} tasks)"
        print(f"{label:<16}" + "".join(
            f"{row[m]:>9.1f}s" + (f" {row[m] / row['local']:>5.2f}x" if "local" in row else "       ")
            for m in args.modes))


if __name__ == "__main__":
    main()
