"""The tasks: what runs inside one ``mempamal task`` command.

The map, refit, permute and gather stages, the fits they make, and the task
command's runtime (running records, logs, batches of tasks in one process).
"""
