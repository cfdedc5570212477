"""The ``mempamal`` command (also ``python -m mempamal``), and the command line of a task
(``mempamal task {map,refit,permute,gather,batch}``, the commands workflow.json calls)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .backends import WorkflowError, available_backends, get_backend
from .experiment.config import ConfigError, generate
from .experiment.encoding import DecodingError
from .model_selection.cache import cache_command
from .export import EXPORTERS, export
from .results.report import write_report
from .results.loading import load_results
from .running import run
from .submission import attach, run_detached_process, submit
from .tasks import run_batch, run_task
from .tasks.context import TaskInputError
from .trusting import trust_command
from .workdir.batches import read_batch_file
from .workdir.files import InputFileError, reading
from .workdir.layout import INDICES, TaskId
from .workdir.lock import LockError
from .workdir.manifest import DataChangedError, verify
from .workdir.status import FAILED, LOST, workflow_status
from .workdir.trust import KeyFileError, UntrustedWorkdirError, check_trusted
from .workdir.workflow import is_complete, load_workflow


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mempamal", description="Means for EMbarrassingly PArallel MAchine Learning: scikit-learn "
        "(nested) cross-validation as files and commands, run by a back-end.",
        epilog="A session: mempamal generate config.py runs/x; mempamal run runs/x -j 2; mempamal status "
               "runs/x (from another shell); mempamal results runs/x; mempamal report runs/x -o report.html. "
               "`mempamal COMMAND --help` explains each command's options.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("run", help="execute the workflow of a workdir",
                            description="Execute the workflow of WORKDIR with a back-end.")
    p.add_argument("workdir", help="a directory written by Experiment.write")
    p.add_argument("--backend", default="local",
                   help=f"the back-end: {', '.join(available_backends())} (default: local)")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="recompute every task, even those already complete")
    p.add_argument("-q", "--quiet", dest="progress", action="store_false", help="no progress bar")
    _add_backend_options(p)
    p.add_argument("--wait", action="store_true",
                   help="when another run holds the workdir (its run.lock), wait for it to end instead of "
                        "refusing at once")
    p.add_argument("--detach", action="store_true",
                   help="hand the run over and return at once (SLURM: job arrays; a Dask scheduler: "
                        "fire-and-forget futures; local, soma-workflow: a background process of this machine); "
                        "follow it with `mempamal status`, stop it with `mempamal cancel`")
    p.add_argument("--detached-process", action="store_true", help=argparse.SUPPRESS)  # submit()'s child

    p = commands.add_parser(
        "cancel", help="stop a run submitted with --detach (or mempamal.submit)",
        description="Stop the run last submitted for WORKDIR with its scheduler's own cancel (scancel, a Dask "
                    "cancel) or by ending its background process and workers. Tasks done stay done: run or "
                    "submit again to resume.")
    p.add_argument("workdir", help="a directory whose run was submitted")

    _add_export_parser(commands)

    p = commands.add_parser(
        "generate", help="write a workdir from a config module",
        description="Write WORKDIR (data, folds, experiment.json, workflow.json) from CONFIG, a Python file "
                    "defining `experiment` (a mempamal.Experiment) and `load_data()` returning (X, y) or "
                    "(X, y, groups). Nothing is fitted; run it with `mempamal run WORKDIR`.")
    p.add_argument("config", help="the config module, a .py file")
    p.add_argument("workdir", help="the directory to write (created if needed)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a different experiment already written in WORKDIR (and its results)")
    p.add_argument("--python", default=None, metavar="PATH",
                   help="the interpreter written into the task commands (default: this one); set it when "
                        "the cluster's nodes see Python elsewhere")

    _add_inspection_commands(commands)
    _add_result_commands(commands)
    task_parser(commands.add_parser(
        "task", help="run one task of a workflow (the commands in workflow.json)"))
    return parser


def _add_inspection_commands(commands) -> None:
    """``mempamal status``, ``verify`` and ``trust``: what a workdir holds and whether to run it."""
    p = commands.add_parser(
        "status", help="count done / running / pending / failed / lost tasks",
        description="Count the tasks of WORKDIR that are done, running, pending, failed or lost (their process "
                    "died without a word: killed, out of memory), read from their outputs, logs and running "
                    "records (works during a run in another process, with any back-end), and name each failed "
                    "or lost task with its log and command. Exits with status 1 if a task failed or was lost.")
    p.add_argument("workdir", help="a directory written by Experiment.write or `mempamal generate`")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead")

    p = commands.add_parser(
        "verify", help="check that the data, folds and experiment.json are as written",
        description="Recompute the SHA-256 of the data, folds and experiment.json of WORKDIR and compare them "
                    "with manifest.json, written with them: each file is ok, changed or missing. Exits with "
                    "status 1 unless all are ok (or without a manifest: a workdir of an older mempamal).")
    p.add_argument("workdir", help="a directory written by Experiment.write or `mempamal generate`")
    p.add_argument("--update", action="store_true",
                   help="record the new size and time of files whose content is unchanged (after a touch, or "
                        "a copy that did not keep times), so that `mempamal run` accepts them again")

    p = commands.add_parser(
        "trust", help="show what a workdir imports and runs, then sign it with your key",
        description="A workdir runs only if signed with your key (in your config directory, or the file named "
                    "by MEMPAMAL_KEY_FILE): Experiment.write signs what it writes. For a workdir you did not "
                    "write, or one written before signatures: check every input against the manifest, show "
                    "the packages, classes and functions its tasks will import, the data and the interpreter "
                    "its commands run; then, once confirmed, sign it.")
    p.add_argument("workdir", help="a directory written by Experiment.write or `mempamal generate`")
    p.add_argument("--yes", action="store_true",
                   help="sign without asking (needed when stdin is not a terminal); review the listing first")


def _add_result_commands(commands) -> None:
    """``mempamal results``, ``report`` and ``cache``: what a finished run left."""
    p = commands.add_parser(
        "results", help="print the summary of a finished workdir",
        description="Print the results of a finished WORKDIR: per metric the mean, std and median over outer "
                    "folds, then each outer fold's scores and best parameters.")
    p.add_argument("workdir", help="a directory whose workflow has completed")
    p.add_argument("--json", action="store_true",
                   help="print machine-readable JSON (per-fold scores, summary, best parameters)")
    p.add_argument("--partial", action="store_true",
                   help="before the workflow ends: what the finished tasks allow (the outer folds done, the "
                        "permutations done so far), marked as partial")

    p = commands.add_parser(
        "report", help="write an HTML report (table and plots) or a PNG figure",
        description="Write the summary table and the plots (outer-fold scores; inner validation curve or "
                    "heat map per fold) of a finished WORKDIR as one self-contained HTML file, or the "
                    "figure alone as a PNG. Needs matplotlib: pip install 'mempamal[plot]'.")
    p.add_argument("workdir", help="a directory whose workflow has completed")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="report.html (self-contained) or a .png figure (default: WORKDIR/report.html)")

    p = commands.add_parser(
        "cache", help="list (or --clear) the cached workdirs of model_selection",
        description="List the workdirs that mempamal.model_selection's functions wrote in the cache folder "
                    "($MEMPAMAL_CACHE_DIR, else the platform's cache directory), or remove them.")
    p.add_argument("--clear", action="store_true", help="remove every cached workdir but those a run holds")


def _add_export_parser(commands) -> None:
    """``mempamal export``: its formats, batches and SLURM resources."""
    p = commands.add_parser("export", help="write the workflow of a workdir for another tool",
                            description="Write the workflow of WORKDIR in a format other tools run.")
    p.add_argument("workdir", help="a directory written by Experiment.write or `mempamal generate`")
    p.add_argument("--format", required=True, choices=sorted(EXPORTERS),
                   help="soma-workflow: Soma-Workflow's file (soma_submit_workflow, GUI); "
                   "cmd-list: JSON of shell commands runnable from anywhere and their dependencies; "
                   "slurm: a bash script of sbatch job arrays, one per stage (options below)")
    p.add_argument("-o", "--output", required=True, help="the file to write")
    p.add_argument("--batch-size", type=int, metavar="N",
                   help="most tasks per command (one process runs them in turn, each with its own outputs "
                        "and log); 1: one command per task (default: per stage, one batch per job at once)")
    p.add_argument("--jobs-at-once", type=int, metavar="N",
                   help="the jobs that will run at once, from which the default batch size is derived "
                        "(default: this machine's cores)")
    g = p.add_argument_group("slurm", "resources of every stage's job arrays (--format slurm)")
    g.add_argument("--cpus", type=int, help="--cpus-per-task: the CPUs of each task, also its BLAS/OpenMP "
                                            "threads (not the tasks at once, which is SLURM's to decide)")
    g.add_argument("--mem", help="--mem, e.g. 2G")
    g.add_argument("--time", help="--time, e.g. 01:00:00")
    g.add_argument("--partition", help="--partition")
    g.add_argument("--sbatch-arg", dest="sbatch_args", action="append", metavar="OPTION",
                   help="any other sbatch option, e.g. --sbatch-arg=--qos=short (repeat for more)")
    g.add_argument("--stage", dest="stage_options", action="append", metavar="STAGE:KEY=VALUE",
                   help="one stage's own resource, e.g. --stage map:mem=4G --stage gather:cpus=1")
    g.add_argument("--max-array-size", type=int, help="most elements per job array (default 1000)")


_SHORT_FLAGS = {"n_jobs": "-j"}
_OPTION = "backend option "  # the namespace prefix of back-end options, apart from run's own arguments


def _add_backend_options(parser: argparse.ArgumentParser) -> None:
    """A flag per option that the registered back-ends declare (``Backend.options``).

    An option several back-ends take is one flag whose help names each; only the options
    given on the command line reach :func:`mempamal.run`, which refuses those its
    back-end does not declare.
    """
    declared: dict[str, list] = {}
    for name in available_backends():
        try:
            backend = get_backend(name)
        except ImportError:  # a registered module that cannot be imported: it fails when used
            continue
        for option in backend.options:
            if option.cli:
                declared.setdefault(option.name, []).append((name, option))
    group = parser.add_argument_group(
        "back-end options", "each for the back-ends it names; run() refuses an option its back-end lacks")
    for name, users in sorted(declared.items(), key=lambda item: item[0] not in _SHORT_FLAGS):
        option = users[0][1]
        by_help: dict[str, list[str]] = {}
        for backend, o in users:
            by_help.setdefault(o.help, []).append(backend)
        text = "; ".join(f"{', '.join(backends)}: {h}" for h, backends in by_help.items())
        flags = [f"--{name.replace('_', '-')}"]
        if name in _SHORT_FLAGS:
            flags.insert(0, _SHORT_FLAGS[name])
        kwargs = dict(dest=_OPTION + name, default=argparse.SUPPRESS, help=text.replace("%", "%%"))
        try:
            if option.type is bool:
                group.add_argument(*flags, action=argparse.BooleanOptionalAction, **kwargs)
            else:
                group.add_argument(*flags, type=option.type, metavar=name.upper(), **kwargs)
        except argparse.ArgumentError:
            # A plug-in's option named like one of run's own flags (--backend, --quiet...): no flag,
            # rather than no command line at all; it stays an option of run() in Python.
            continue


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` and run the command; a user's mistake ends with a message on stderr, no traceback."""
    args = _parser().parse_args(argv)
    if args.command == "task":
        # A task's errors go to its log with their traceback; a missing input or a refused
        # import needs none.
        try:  # before anything of the workdir is read (a batch file, an output) or decoded. The signature
            # covers experiment.json's content: no check of its time, which a transfer to a cluster does not keep.
            check_trusted(args.workdir)
        except (UntrustedWorkdirError, KeyFileError, TaskInputError, DataChangedError, FileNotFoundError) as e:
            sys.exit(f"mempamal: {e}")
        if args.stage == "batch":
            _task_batch(args)
            return
        task_id = task_id_of(args)
        if args.if_incomplete:
            if is_complete(Path(args.workdir), task_id):
                print(f"{task_id}: complete, skipped")
                return
        try:
            run_task(args.workdir, task_id, args.log)
        except TaskInputError as e:  # a missing or foreign input: the message says it all
            sys.exit(f"mempamal: {e}")
        except DecodingError as e:  # experiment.json names what may not be imported
            sys.exit(f"mempamal: experiment.json: {e}")
        return
    try:
        _command(args)
    except (ConfigError, FileNotFoundError, FileExistsError, PermissionError, ValueError, TypeError,
            ImportError) as e:
        sys.exit(f"mempamal: error: {e}")
    except BrokenPipeError:  # the reader went away (`mempamal status DIR | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def _task_batch(args: argparse.Namespace) -> None:
    """``mempamal task batch``: each task in turn, its own log; status 1 when one failed."""
    if args.log is not None:
        sys.exit("mempamal task batch: no --log: each task writes its own log (logs/<task>.log)")
    path = Path(args.workdir, args.file)
    try:
        with reading(path, "a batch file, written with the workflow's export or by the back-end"):
            task_ids = read_batch_file(path)
    except (InputFileError, ValueError, TypeError, KeyError) as e:
        sys.exit(f"mempamal: {e}")
    failed = run_batch(args.workdir, task_ids)
    if failed:
        sys.exit(f"mempamal: {len(failed)} of the {len(task_ids)} tasks of {args.file} failed: "
                 f"{', '.join(map(str, failed))}; see their logs")


def _run_command(args: argparse.Namespace) -> None:
    """``mempamal run``: in this process, detached (``--detach``), or as a submission's background process."""
    # Only the options given (absent flags are not in the namespace): run() checks them.
    options = {k[len(_OPTION):]: v for k, v in vars(args).items() if k.startswith(_OPTION)}
    try:
        if args.detached_process:
            return run_detached_process(args.workdir)
        if args.detach:
            submission = submit(args.workdir, backend=args.backend, resume=args.resume, **options)
            print(f"mempamal: {len(submission.record['todo'])} tasks {submission.describe()}; follow with: "
                  f"mempamal status {args.workdir}; stop with: mempamal cancel {args.workdir}")
            return
        report = run(args.workdir, backend=args.backend, resume=args.resume, progress=args.progress,
                     wait=args.wait, **options)
    except (LockError, DataChangedError, UntrustedWorkdirError) as e:
        sys.exit(f"mempamal: {e}")
    except WorkflowError as e:
        sys.exit(str(e))
    except (ConnectionError, RuntimeError) as e:  # unreachable scheduler, sbatch refusing
        sys.exit(f"mempamal: error: {e}")
    print(f"mempamal: {report.summary()}")


def _command(args: argparse.Namespace) -> None:
    if args.command == "run":
        return _run_command(args)
    if args.command == "export":
        try:
            options = _slurm_options(args)
            if options and args.format != "slurm":
                raise ValueError(f"{', '.join('--' + k.replace('_', '-') for k in options)}: "
                                 f"options of --format slurm, not of --format {args.format}")
            # Every format's own: how many tasks each command runs.
            options.update({k: getattr(args, k) for k in ("batch_size", "jobs_at_once")
                            if getattr(args, k) is not None})
            print(f"mempamal: wrote {export(args.workdir, args.format, args.output, **options)}")
        except (FileNotFoundError, ValueError) as e:
            sys.exit(str(e))
        except (UntrustedWorkdirError, DataChangedError) as e:
            sys.exit(f"mempamal: {e}")
        return
    if args.command == "trust":
        trust_command(args.workdir, yes=args.yes)
        return
    if args.command == "generate":
        workdir = generate(args.config, args.workdir, overwrite=args.overwrite, python=args.python)
        n = len(load_workflow(workdir).tasks)
        print(f"mempamal: wrote {workdir} ({n} tasks); run it with: mempamal run {workdir}")
        return
    if args.command == "cancel":
        submission = attach(args.workdir)
        try:
            submission.cancel()
        except LockError as e:  # submitted from another host
            sys.exit(f"mempamal: {e}")
        print(f"mempamal: cancelled; {submission.status()}")
        return
    if args.command == "status":
        status = workflow_status(args.workdir)
        submission = attach(args.workdir, missing_ok=True)
        if args.json:
            print(json.dumps({**status.to_dict(), "submission": submission and submission.to_dict()}, indent=1))
        else:
            print(status if submission is None else f"{status}\n{submission.describe()}")
        if status.names(FAILED) or status.names(LOST):
            sys.exit(1)
        return
    if args.command == "verify":
        try:
            verification = verify(args.workdir, update=args.update)
        except InputFileError as e:  # an unreadable manifest
            sys.exit(f"mempamal: {e}")
        print(verification)
        if not verification.ok:
            sys.exit(1)
        return
    if args.command == "results":
        res = load_results(args.workdir, partial=args.partial)
        print(json.dumps(res.to_dict(), indent=1) if args.json else res.summary())
        return
    if args.command == "cache":
        print(cache_command(clear=args.clear))
        return
    if args.command == "report":
        print(f"mempamal: wrote {write_report(args.workdir, args.output)}")
        return


def _slurm_options(args: argparse.Namespace) -> dict:
    """The options of ``export --format slurm`` given on the command line."""
    options = {k: getattr(args, k) for k in ("cpus", "mem", "time", "partition", "sbatch_args", "max_array_size")
               if getattr(args, k) is not None}
    stages: dict[str, dict] = {}
    for item in args.stage_options or []:
        stage, _, setting = item.partition(":")
        key, eq, value = setting.partition("=")
        if not eq or not stage or not key:
            raise ValueError(f"--stage: expected STAGE:KEY=VALUE such as map:mem=4G, got {item!r}")
        if key == "sbatch_args":
            stages.setdefault(stage, {}).setdefault(key, []).append(value)
        else:
            stages.setdefault(stage, {})[key] = int(value) if key == "cpus" and value.isdigit() else value
    if stages:
        options["stages"] = stages
    return options


# -- the command line of a task -------------------------------------------------------

def task_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The parser of ``mempamal task ...`` (the commands workflow.json calls)."""
    parser = parser or argparse.ArgumentParser(prog="mempamal task")
    parser.add_argument("--if-incomplete", action="store_true",
                        help="do nothing when the task's outputs are already complete (this experiment's, "
                             "this task's): what a scheduler resubmitting a whole array runs")
    parser.add_argument("--log", metavar="FILE", default=None,
                        help="send the task's output and errors to FILE, relative to the workdir (default: "
                             "this command's stdout and stderr)")
    stages = parser.add_subparsers(dest="stage", required=True, metavar="{map,refit,permute,columns,gather,batch}")
    workdir = "the workdir (workflow.json runs every command from it, as '.')"
    target = "the target (column of y) when each target is analysed apart (per_target)"
    p = stages.add_parser("map", help="fit and score a chunk of the grid on one inner fold")
    p.add_argument("workdir", help=workdir)
    p.add_argument("--target", type=int, help=target)
    p.add_argument("--outer", type=int, required=True, help="the outer fold (0-based)")
    p.add_argument("--inner", type=int, required=True, help="the inner fold of that outer training set")
    p.add_argument("--chunk", type=int, required=True, help="the chunk of the grid (grid_chunk_size points)")
    p = stages.add_parser("refit", help="select, refit and test on one outer fold")
    p.add_argument("workdir", help=workdir)
    p.add_argument("--target", type=int, help=target)
    p.add_argument("--outer", type=int, required=True, help="the outer fold (0-based)")
    p = stages.add_parser("permute", help="the whole analysis of a chunk of permutations of y, on one outer fold")
    p.add_argument("workdir", help=workdir)
    p.add_argument("--target", type=int, help=target)
    p.add_argument("--perm", type=int, required=True, help="the chunk of permutations (permutation_chunk_size)")
    p.add_argument("--outer", type=int, required=True, help="the outer fold (0-based)")
    p = stages.add_parser("columns", help="the whole analyses of a chunk of columns fitted together (stacked), "
                                          "on one outer fold")
    p.add_argument("workdir", help=workdir)
    p.add_argument("--outer", type=int, required=True, help="the outer fold (0-based)")
    p.add_argument("--chunk", type=int, required=True, help="the chunk of columns (experiment.json's stacking)")
    p = stages.add_parser("gather", help="gather the outer folds into results.json and results.npz")
    p.add_argument("workdir", help=workdir)
    p = stages.add_parser(
        "batch", help="run the tasks a batch file lists, in turn, in this process",
        description="Run each task FILE lists in turn, in this one process (one interpreter start-up for "
                    "all), each with its own outputs and log (logs/<task>.log), as its own command would; "
                    "skip those complete (as --if-incomplete), go on after a failure, and exit with status 1 "
                    "if any failed. Prints '<task>: running' then '<task>: done' (or '<task>: complete, skipped'); a "
                    "failure goes to stderr as '<task>: failed: ...'.")
    p.add_argument("workdir", help=workdir)
    p.add_argument("--file", required=True, help="the batch file, relative to the workdir (batches/...json)")
    return parser


def task_id_of(args: argparse.Namespace) -> TaskId:
    """The identity of the task that parsed command-line arguments name."""
    return TaskId(args.stage, **{f: getattr(args, f) for f, _ in INDICES if getattr(args, f, None) is not None})
