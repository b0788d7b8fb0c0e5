"""Can the configured storage be used? One answer for every command that touches it.

Commands that only read published data (``list``, ``gaps``, ``verify``) need ``storage.output_dir``
to be a directory or a path where one can still be created; commands that publish (``process``,
``retry``) also need it and ``storage.temp_dir`` writable. Both ask :func:`storage_problems`, so
an ``output_dir`` that names a regular file is the same configuration error (the same sentence)
everywhere, found before anything is read: never "every session is missing".
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from spx_dagster.core.config.load import resolve
from spx_dagster.core.config.problems import Problem
from spx_dagster.core.config.settings import Settings
from spx_dagster.core.config.validate import (
    Context,
    check_output_dir,
    check_temp_dir,
    nearest_existing,
)


def storage_problems(settings: Settings, *, writing: bool) -> list[Problem]:
    """The errors that make the configured storage unusable, each naming where its value came
    from (empty when it can be used).

    Args:
        settings: The effective settings.
        writing: True for commands that publish (directories must be writable); False for
            commands that only read (``output_dir`` must be, or be able to become, a directory).
    """
    context = Context(now=None, create_dirs=False)
    if writing:
        checks = (check_output_dir, check_temp_dir)
    elif nearest_existing(Path(settings.storage.output_dir)).is_dir():
        # A missing output_dir under a directory is a fresh install: nothing published yet.
        return []
    else:
        checks = (check_output_dir,)
    problems = [p for check in checks for p in check(settings, context) if p.is_error]
    if not problems:
        return []
    origins = resolve().values
    return [
        dataclasses.replace(p, source=origins[p.key].source_label) if p.key in origins else p
        for p in problems
    ]


def storage_error_message(problems: list[Problem]) -> str:
    """The one sentence every command prints for unusable storage."""
    return "the configuration cannot be used: " + " ".join(p.message() for p in problems)
