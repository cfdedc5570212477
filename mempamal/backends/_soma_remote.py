"""A remote Soma-Workflow resource: the workdir sent there and each task's files fetched back,
and the ssh tunnel the connection opens kept on the loopback interface.

Used by :class:`mempamal.backends.soma_workflow.SomaWorkflowBackend` with ``transfer=True``
(no shared filesystem) or ``shared_path`` (the logs the engine keeps).
"""
from __future__ import annotations

import contextlib
import io
import os
import posixpath
from pathlib import Path

from ..workdir.batches import Batch


def send_workdir(controller, workflow_id, workdir: Path):
    """Transfer the workdir to the resource (the jobs wait for it); return the function fetching a task's files.

    The transfer goes through Soma-Workflow's portable transfer (file contents through the ssh
    tunnel the connection holds): its default with key authentication, ``scp`` run by
    ``os.system``, ignores scp's failures and authenticates with the ssh command's own
    keys and port, not the connection's.
    """
    from soma_workflow.client import Helper

    engine = controller._engine_proxy
    controller._transfer = directory_transfer(engine)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints every file it copies
        Helper.transfer_input_files(workflow_id, controller)
    # (transfer id, (status, progression, engine path, client path, client paths)) per transfer
    transfers = controller.workflow_elements_status(workflow_id)[1]
    (remote_workdir,) = [info[1][2] for info in transfers]
    local_workdir = Path(workdir).resolve()

    def fetch(batch: Batch, job_id, done: bool) -> None:
        fetch_logs(controller, local_workdir, batch, job_id)
        for task in batch.tasks:
            if len(batch.tasks) > 1:  # each task of a batch wrote its own log in the copy
                fetch_file(engine, posixpath.join(remote_workdir, task.log), local_workdir / task.log)
            # The outputs a task wrote (atomically: there means whole); a job that succeeded wrote
            # them all. A missing remote file is skipped: it would come back as an empty one.
            for relative in task.outputs:
                if fetch_file(engine, posixpath.join(remote_workdir, relative), local_workdir / relative) \
                        is False and done:
                    raise OSError(f"{relative}: not on the resource after task {task.name} succeeded")
    return fetch


def fetch_logs(controller, workdir: Path, batch: Batch, job_id) -> None:
    """A job's stdout and stderr, kept by the engine, into the batch's files in the local workdir."""
    for path in (batch.stdout, batch.stderr):
        (workdir / path).parent.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints every file it copies
        controller.retrieve_job_stdouterr(job_id, str(workdir / batch.stdout), str(workdir / batch.stderr))


def fetch_file(engine, remote: str, local: Path) -> bool:
    """Copy a file of the resource to ``local`` through Soma-Workflow's portable transfer; False if it is missing.

    Written next to its place, then renamed: a task's output is either there, whole, or absent.
    """
    from soma_workflow.transfer import PortableRemoteTransfer

    if not engine.is_file(remote):
        return False
    local.parent.mkdir(parents=True, exist_ok=True)
    part = local.with_name(f".{local.name}.transfer")
    with contextlib.redirect_stdout(io.StringIO()):
        PortableRemoteTransfer(engine).transfer_from_remote(remote, str(part))
    size, expected = part.stat().st_size, engine.get_file_size(remote)
    if size != expected:  # the transfer itself reports nothing
        part.unlink()
        raise OSError(f"transfer of {remote} from the resource: {size} bytes of {expected}")
    os.replace(part, local)
    return True


def directory_transfer(engine):
    """Soma-Workflow's portable transfer, sending the files at the top of a directory too.

    Soma-Workflow 6's ``Transfer.top_down_dir_list`` lists the files of a directory's
    subdirectories only: experiment.json and folds.npz would stay behind.
    """
    from soma_workflow.transfer import PortableRemoteTransfer

    class DirectoryTransfer(PortableRemoteTransfer):
        def top_down_dir_list(self, path):
            dirs, files = super().top_down_dir_list(path)
            top = sorted(e.name for e in os.scandir(path) if e.is_file())
            return dirs, ({"": top, **files} if top else files)

    return DirectoryTransfer(engine)


def tunnel_on_loopback() -> None:
    """Make Soma-Workflow's ssh tunnel entrance listen on 127.0.0.1 only.

    Its entrance, on the client, binds ``("", port)``: every interface, so that anyone on the
    notebook's network could drive the engine of the cluster account through it.
    """
    from soma_workflow.connection import Tunnel

    if getattr(Tunnel.ForwardServer, "_mempamal_loopback", False):
        return

    class LoopbackForwardServer(Tunnel.ForwardServer):
        _mempamal_loopback = True

        def __init__(self, address, handler, *args, **kwargs):
            super().__init__(("127.0.0.1", address[1]), handler, *args, **kwargs)

    Tunnel.ForwardServer = LoopbackForwardServer
