"""A dlt progress collector drawn with rich: one bar per counter of the running step (extract, normalize, load)."""

from __future__ import annotations

from typing import Any

from dlt.common.runtime.collector import Collector
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class RichProgress(Collector):
    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def update(self, name: str, inc: int = 1, total: int | None = None, inc_total: int | None = None,
               message: str | None = None, label: str = "") -> None:
        if self._progress is None:
            return
        key = f"{name}[{label}]" if label else name
        task = self._tasks.get(key)
        if task is None:
            task = self._progress.add_task(f"{self.step}: {key}", total=total)
            self._tasks[key] = task
        elif inc_total:
            current = self._progress.tasks[task].total or 0
            self._progress.update(task, total=current + inc_total)
        fields: dict[str, Any] = {"advance": inc}
        if message:
            fields["description"] = f"{self.step}: {key} ({message})"
        self._progress.update(task, **fields)

    def _start(self, step: str) -> None:
        self._tasks = {}
        self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=self.console, transient=False)
        self._progress.start()

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        self._progress = None
        self._tasks = {}
