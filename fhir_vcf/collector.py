"""The cyclic garbage collector, paused while a record is read and judged (issue 11).

Reading a record allocates a tree of small containers per resource (the parsed JSON's elements, the
mappers' Elements and memos), and none of them forms a cycle: reference counting frees them all.
The cyclic collector cannot know that. While a large record is read it runs young collections every
few hundred allocations, promotes the survivors, and every so often walks the whole heap: measured
on a 10,000-resource record, that made it cost 16x a 1,000-resource one with the collector on and 9x
with it paused (`benchmarks/bench_record_cost.py`). Mercurial pauses its collector around its own
parsers for the same reason (`mercurial.util.nogc`).

`paused()` disables the collector for the duration and restores the caller's setting after: a
program that disabled it keeps it disabled, and with several threads judging at once the collector
comes back when the last of them is done. Cyclic garbage made meanwhile (by anyone) is collected
at the first collection after.
"""

from __future__ import annotations

import gc
import threading
from types import TracebackType

_lock = threading.Lock()
_holders = 0
_restore = False


class _Paused:
    """The context `paused()` gives: a class, not a `@contextmanager` generator, because it is entered
    several times a call and a generator object (built, started, resumed, closed) costs more than
    these two methods. It holds no state of its own, so one instance serves every use, nested or in
    several threads at once: the count of holders is module state under the lock.

    Entering allocates no container before the collector is off. The first container allocated while
    the collector is on sets off a young collection of everything made since the last one, and what
    a pause has made is all young: a document parsed in one pause (`sources.files.parse_json`) and
    handed to the next (`record.load_document`, which frees most of it) was walked whole at that
    entry, 40-60 ms of a 10,000-resource record's ~170 ms and ~1 ms of a 1,000-resource one's ~15 ms.
    Hence static methods (a `with` binds an instance method, and a bound method is a container) and
    the lock taken by `acquire()`/`release()` calls (its own `with` would bind `__enter__` too)."""

    __slots__ = ()

    @staticmethod
    def __enter__() -> None:
        global _holders, _restore
        _lock.acquire()
        try:
            if _holders == 0:
                _restore = gc.isenabled()
                gc.disable()
            _holders += 1
        finally:
            _lock.release()

    @staticmethod
    def __exit__(kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        global _holders
        _lock.acquire()
        try:
            _holders -= 1
            if _holders == 0 and _restore:
                gc.enable()
        finally:
            _lock.release()


_PAUSED = _Paused()


def paused() -> _Paused:
    """The collector disabled while the `with` block runs, the caller's setting restored after."""
    return _PAUSED
