"""Graded exercises: ``qnetstack exercise LAYER DIR`` writes a layer for students to build.

An exercise is a folder of templates shipped with the package
(``qnetstack/stack/exercises/<layer>/``, package data): a stub of the layer's
entity whose methods name the spec clauses they are judged by and raise
``NotImplementedError`` where the work goes, a student README and a few
visible tests that run clauses of the layer's conformance suite on the stub.
A template ``name.tmpl`` is written as ``name``.

The folder is written whole or not at all: the files go into a temporary
folder next to DIR, which is then renamed to DIR. DIR must not exist or be an
empty folder.

Grading is the conformance runner (:mod:`qnetstack.stack.conform`) with a
score: ``qnetstack conform LAYER module:Class --score``.
"""

from __future__ import annotations

import importlib.resources
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["EXERCISES", "ExerciseError", "exercise_files", "write_exercise"]

# layers that have an exercise, and the implementation each one's stub defines (module:Class)
EXERCISES = {"link": "student_link:StudentLink", "network": "student_network:StudentNetwork"}
TEMPLATE_SUFFIX = ".tmpl"


class ExerciseError(ValueError):
    """Bad input to ``qnetstack exercise``: an unknown layer or a folder that cannot take the exercise."""


def exercise_files(layer: str) -> dict[str, str]:
    """The files of ``layer``'s exercise: name as written -> text."""
    if layer not in EXERCISES:
        raise ExerciseError(f"no exercise for layer {layer!r} (exercises: {', '.join(EXERCISES)})")
    folder = importlib.resources.files("qnetstack.stack").joinpath("exercises", layer)
    files = {}
    for entry in folder.iterdir():
        if entry.is_file() and entry.name.endswith(TEMPLATE_SUFFIX):
            files[entry.name[: -len(TEMPLATE_SUFFIX)]] = entry.read_text(encoding="utf-8")
    if not files:  # an install without the package data
        raise ExerciseError(f"the {layer} exercise's templates are missing from this install of qnetstack")
    return files


def _check_target(target: Path) -> None:
    shown = str(target)
    if target.exists() or target.is_symlink():
        if not target.is_dir():
            raise ExerciseError(f"DIR: {shown} exists and is not a folder")
        if any(target.iterdir()):
            raise ExerciseError(f"DIR: {shown} is not empty; give a new or empty folder")
    parent = target.absolute().parent
    if not parent.is_dir():
        raise ExerciseError(f"DIR: cannot write {shown}: {parent} does not exist or is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExerciseError(f"DIR: cannot write {shown}: folder {parent} is not writable")


def write_exercise(layer: str, target: str | os.PathLike[str]) -> list[Path]:
    """Write ``layer``'s exercise into the folder ``target``; return the files written.

    Raises :class:`ExerciseError` (one line, naming the problem) before
    anything is written when the layer has no exercise or ``target`` exists
    and is not an empty folder or cannot be made."""
    files = exercise_files(layer)
    target = Path(target)
    if not str(target):
        raise ExerciseError("DIR: needs a path, got an empty one")
    _check_target(target)
    parent = target.absolute().parent
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    except OSError as exc:
        raise ExerciseError(f"DIR: cannot write {target}: {exc.strerror or type(exc).__name__}") from None
    try:
        for name, text in sorted(files.items()):
            (staging / name).write_text(text, encoding="utf-8")
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; the exercise is an ordinary folder
        os.replace(staging, target)  # replaces an empty folder in one step (POSIX rename)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ExerciseError(f"DIR: cannot write {target}: {exc.strerror or type(exc).__name__}") from None
    return [target / name for name in sorted(files)]
