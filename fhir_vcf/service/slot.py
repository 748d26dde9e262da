"""The evaluation slot: one call of a worker process does CPU work at a time, in arrival order.

A worker's threads exist to wait (a FHIR server, a slow client). The CPU work of a call (building
its record, judging it) runs one thread at a time under the GIL anyway, so several threads doing it
at once only interleave and all finish late; the slot lets one call compute while the others wait
without competing for the GIL. `threading.Lock` did that, but it is not fair: a thread woken by its
release must still win the GIL, and any thread running meanwhile may take the lock first, so under
a steady load a call could be passed over again and again while later ones went ahead.
`EvaluationSlot` hands the slot over in arrival order: on release, the thread that has waited
longest owns it at once, whatever runs next (`benchmarks/bench_serving.py`, concurrency 8: see
docs/performance.md, fifth round).
"""

from __future__ import annotations

import threading
from collections import deque
from types import TracebackType


class EvaluationSlot:
    """A lock handed to its waiters first come, first served (a context manager, like `threading.Lock`).

    Not re-entrant. Waiting costs no CPU: each waiter blocks on a lock of its own, which the holder
    releases when it hands the slot over.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Lock] = deque()

    def acquire(self) -> None:
        with self._guard:
            if not self._held:
                self._held = True
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        turn.acquire()  # released by the holder that hands the slot to this thread

    def release(self) -> None:
        with self._guard:
            if not self._held:
                raise RuntimeError("release of an evaluation slot that is not held")
            if self._waiters:
                self._waiters.popleft().release()  # the slot stays held: it is the waiter's now
            else:
                self._held = False

    def locked(self) -> bool:
        """Whether a call holds the slot now."""
        return self._held

    def __enter__(self) -> EvaluationSlot:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()


__all__ = ["EvaluationSlot"]
