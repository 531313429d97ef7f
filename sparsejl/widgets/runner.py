"""The explorer's run: :func:`sparsejl.bench.sweep.run` on a background thread, so that Stop and
the progress bar stay live. Two callbacks, each with one signature:

* ``on_record(record, done, total)`` as each record comes in (the sweep's ``progress``);
* ``on_done(outcome)`` once, with a :class:`Outcome`, on the run's thread.

It knows nothing of widgets.
"""
from __future__ import annotations

import threading
import time
import traceback
from typing import Callable, List, NamedTuple, Optional, Sequence

__all__ = ["Runner", "Outcome"]


class Outcome(NamedTuple):
    records: List[dict]
    seconds: float
    stopped: bool
    error: Optional[BaseException] = None
    traceback: str = ""
    environment: Optional[dict] = None


class Runner:
    """One sweep at a time on a daemon thread; :meth:`stop` asks it to end after the measurement
    in progress."""

    def __init__(self, on_record: Callable[[dict, int, int], None], on_done: Callable[[Outcome], None]):
        self.on_record, self.on_done = on_record, on_done
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self.records: List[dict] = []     # as they come in

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self, cases: Sequence, backends: Sequence[str], *, repeats: int, operands=None) -> None:
        if self.running:
            raise RuntimeError("a run is in progress; stop it first")
        self._stop.clear()
        self.records = []
        self._thread = threading.Thread(target=self._work, args=(list(cases), list(backends), repeats, operands),
                                        name="sparsejl-explorer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the run ends; True if it has."""
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self.running

    def _progress(self, record: dict, done: int, total: int) -> None:
        self.records.append(dict(record))
        self.on_record(dict(record), done, total)

    def _work(self, cases, backends, repeats, operands) -> None:
        from ..bench import sweep
        t0 = time.monotonic()
        try:
            recs = sweep.run(cases, backends, repeats=int(repeats), warmup=1, progress=self._progress,
                             should_stop=self._stop.is_set, operands=operands)
        except Exception as exc:   # a failed run is an outcome, not a crash of the front end
            outcome = Outcome(list(self.records), time.monotonic() - t0, self._stop.is_set(), exc,
                              traceback.format_exc())
        else:
            try:
                from ..bench import env
                environment = env.capture()
            except Exception as exc:   # the environment is context, not a result
                environment = {"error": f"{type(exc).__name__}: {exc}"}
            stopped = self._stop.is_set() or any(r.get("status") == "stopped" for r in recs)
            outcome = Outcome([dict(r) for r in recs], time.monotonic() - t0, stopped, environment=environment)
        self.on_done(outcome)
