"""Terminal progress for the CLI: the ``progress(stage, done, total)`` callback drawn with tqdm."""

from __future__ import annotations

import sys


class TqdmProgress:
    """A ``progress(stage, done, total)`` callback drawing one tqdm bar per stage on stderr.

    A new stage closes the previous bar; a stage whose ``done`` reaches ``total`` closes its bar.
    ``enabled=False`` makes it a no-op (``--no-progress``).
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar = None
        self.stage = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        if stage != self.stage or self.bar is None:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=stage, file=sys.stderr, leave=False, dynamic_ncols=True)
        if self.bar.total != total:
            self.bar.total = total
        self.bar.n = done
        self.bar.refresh()
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = None
        self.stage = None
