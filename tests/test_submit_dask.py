"""submit() to Dask: fire-and-forget futures on an external scheduler (real `dask scheduler` and
`dask worker` processes), followed and waited for from a new Submission; a LocalCluster refused."""
import pytest

from mempamal import attach, submit

from conftest import assert_same_results
from test_dask import local_run, scheduler_address  # noqa: F401  (fixtures)


def test_fire_and_forget_on_external_scheduler(local_run, scheduler_address, tmp_path):  # noqa: F811
    exp, X, y, reference = local_run
    workdir = exp.write(X, y, tmp_path / "run")
    submission = submit(workdir, backend="dask", scheduler_address=scheduler_address)
    assert submission.record["detached"]["scheduler"] == scheduler_address
    assert "fire-and-forget futures on the Dask scheduler" in submission.describe()
    report = attach(workdir).wait(progress=False)  # this client never held the futures
    assert not report.names("failed") and len(report.names("done")) == len(submission.record["todo"])
    assert_same_results(workdir, reference)


def test_local_cluster_refused_with_the_reason(local_run, tmp_path):  # noqa: F811
    exp, X, y, _ = local_run
    workdir = exp.write(X, y, tmp_path / "run")
    with pytest.raises(ValueError, match="needs an external scheduler .* the LocalCluster this back-end would "
                                         "start ends with this process"):
        submit(workdir, backend="dask")
