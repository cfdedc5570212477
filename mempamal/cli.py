"""The ``mempamal`` command (also ``python -m mempamal``)."""
from __future__ import annotations

import argparse
import json
import sys


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
    from .backends import available_backends

    p.add_argument("--backend", default="local",
                   help=f"the back-end: {', '.join(available_backends())} (default: local)")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="recompute every task, even those already complete")
    p.add_argument("-q", "--quiet", dest="progress", action="store_false", help="no progress bar")
    _add_backend_options(p)
    p.add_argument("--wait", action="store_true",
                   help="when another run holds the workdir (its run.lock), wait for it to end instead of "
                        "refusing at once")

    from .export import EXPORTERS

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
        "results", help="print the summary of a finished workdir",
        description="Print the results of a finished WORKDIR: per metric the mean, std and median over outer "
                    "folds, then each outer fold's scores and best parameters.")
    p.add_argument("workdir", help="a directory whose workflow has completed")
    p.add_argument("--json", action="store_true",
                   help="print machine-readable JSON (per-fold scores, summary, best parameters)")

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

    from .tasks.stages import task_parser

    task_parser(commands.add_parser(
        "task", help="run one task of a workflow (the commands in workflow.json)"))
    return parser


_SHORT_FLAGS = {"n_jobs": "-j"}
_OPTION = "backend option "  # the namespace prefix of back-end options, apart from run's own arguments


def _add_backend_options(parser: argparse.ArgumentParser) -> None:
    """A flag per option that the registered back-ends declare (``Backend.options``).

    An option several back-ends take is one flag whose help names each; only the options
    given on the command line reach :func:`mempamal.run`, which refuses those its
    back-end does not declare.
    """
    from .backends import available_backends, get_backend

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
        from pathlib import Path

        from .experiment.encoding import DecodingError
        from .tasks.stages import TaskInputError, run_task, task_id_of

        if args.stage == "batch":
            _task_batch(args)
            return
        task_id = task_id_of(args)
        if args.if_incomplete:
            from .workdir.workflow import is_complete

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
    from .experiment.config import ConfigError

    try:
        _command(args)
    except (ConfigError, FileNotFoundError, FileExistsError, PermissionError, ValueError, TypeError,
            ImportError) as e:
        sys.exit(f"mempamal: error: {e}")
    except BrokenPipeError:  # the reader went away (`mempamal status DIR | head`): not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def _task_batch(args: argparse.Namespace) -> None:
    """``mempamal task batch``: each task in turn, its own log; status 1 when one failed."""
    from pathlib import Path

    from .workdir.batches import read_batch_file
    from .workdir.files import InputFileError, reading
    from .tasks.stages import run_batch

    if args.log is not None:
        sys.exit("mempamal task batch: no --log: each task writes its own log (logs/<task>.log)")
    path = Path(args.workdir) / args.file
    try:
        with reading(path, "a batch file, written with the workflow's export or by the back-end"):
            task_ids = read_batch_file(path)
    except (InputFileError, ValueError, TypeError, KeyError) as e:
        sys.exit(f"mempamal: {e}")
    failed = run_batch(args.workdir, task_ids)
    if failed:
        sys.exit(f"mempamal: {len(failed)} of the {len(task_ids)} tasks of {args.file} failed: "
                 f"{', '.join(map(str, failed))}; see their logs")


def _command(args: argparse.Namespace) -> None:
    if args.command == "run":
        from .backends import WorkflowError
        from .running import run

        # Only the options given (absent flags are not in the namespace): run() checks them.
        options = {k[len(_OPTION):]: v for k, v in vars(args).items() if k.startswith(_OPTION)}
        from .workdir.lock import LockError
        from .workdir.manifest import DataChangedError

        try:
            report = run(args.workdir, backend=args.backend, resume=args.resume, progress=args.progress,
                         wait=args.wait, **options)
        except (LockError, DataChangedError) as e:
            sys.exit(f"mempamal: {e}")
        except WorkflowError as e:
            sys.exit(str(e))
        except ConnectionError as e:
            sys.exit(f"mempamal: error: {e}")
        print(f"mempamal: {report.summary()}")
        return
    if args.command == "export":
        from .export import export

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
        return
    if args.command == "generate":
        from .experiment.config import generate
        from .workdir.workflow import load_workflow

        workdir = generate(args.config, args.workdir, overwrite=args.overwrite, python=args.python)
        n = len(load_workflow(workdir).tasks)
        print(f"mempamal: wrote {workdir} ({n} tasks); run it with: mempamal run {workdir}")
        return
    if args.command == "status":
        from .workdir.status import FAILED, LOST, workflow_status

        status = workflow_status(args.workdir)
        print(json.dumps(status.to_dict(), indent=1) if args.json else status)
        if status.names(FAILED) or status.names(LOST):
            sys.exit(1)
        return
    if args.command == "verify":
        from .workdir.files import InputFileError
        from .workdir.manifest import verify

        try:
            verification = verify(args.workdir, update=args.update)
        except InputFileError as e:  # an unreadable manifest
            sys.exit(f"mempamal: {e}")
        print(verification)
        if not verification.ok:
            sys.exit(1)
        return
    if args.command == "results":
        from .results.results import load_results

        res = load_results(args.workdir)
        print(json.dumps(res.to_dict(), indent=1) if args.json else res.summary())
        return
    if args.command == "cache":
        from .model_selection.cache import cache_command

        print(cache_command(clear=args.clear))
        return
    if args.command == "report":
        from .results.report import write_report

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
