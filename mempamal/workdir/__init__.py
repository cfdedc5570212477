"""The workdir: every file an experiment's run reads or writes, and who owns its name.

Layout (file names, :class:`~mempamal.workdir.layout.TaskId`), atomic files, data,
tabular data, the manifest, the workflow and its batches, the run lock, and the
status read back from the files. Nothing here imports scikit-learn.
"""
