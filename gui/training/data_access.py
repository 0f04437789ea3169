"""What data the open graph may read: files in its own folder, and paths outside it that the
person agreed to (or picked in the Data panel), for this graph only.

The controller reads the project's data through ``read``; the window installs ``confirm`` (the
Load / Choose another / Cancel question of ``gui.data_question``), asked before anything outside
the graph's folder is read. Qt-free: the rule itself lives in ``engine.data.location``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from layerloom.engine.data import Dataset
from layerloom.engine.data.location import OutsideDataError, graph_data_spec, place
from layerloom.engine.serialize import Project
from layerloom.engine.spec import LayerloomError

OUTSIDE_HOW = "not read without your say-so (Train asks again); or choose other data here"


class DataAccess:
    """Approvals of data outside the graph's folder, and reading the project's data section."""

    def __init__(self, project: Callable[[], Project], graph_path: Callable[[], Path | None]):
        self.project, self.graph_path = project, graph_path
        self.approved: set[Path] = set()  # resolved paths the person agreed to read
        # True to read the data section again (the path approved, or other data chosen),
        # False to give up; None: never ask, refuse.
        self.confirm: Callable[[OutsideDataError], bool] | None = None

    def spec(self) -> str:
        """The data section's spec as the readers take it (its path absolute); OutsideDataError
        when the path lies outside the graph's folder and the person has not agreed to it."""
        spec = self.project().data.get("spec") or "bundled"
        return graph_data_spec(spec, self.graph_path(), self.approved, how=OUTSIDE_HOW)

    def read(self, ask: bool = True) -> Dataset:
        """The project's data set; outside the graph's folder only once approved, asking
        through ``confirm`` when ``ask``."""
        try:
            return self._read()
        except OutsideDataError as err:
            if not ask or self.confirm is None or not self.confirm(err):
                raise
        return self._read()  # approved, or other data was chosen meanwhile

    def _read(self) -> Dataset:
        from layerloom.engine.data.section import load_data_section

        return load_data_section(self.project().data, "data", graph_path=self.graph_path(),
                                 allowed=self.approved, how=OUTSIDE_HOW)[1]

    def approve_section(self, section: dict) -> None:
        """Data the person picked themselves (the Data panel) is theirs to read, wherever it is."""
        try:
            path = place(section.get("spec") or "bundled", self.graph_path()).path
        except LayerloomError:
            return
        if path is not None:
            self.approved.add(path)
