"""The evaluation slot (`fhir_vcf.service.slot.EvaluationSlot`): one holder, waiters served in the
order they asked, released whatever happens."""

from __future__ import annotations

import threading
import time

import pytest

from fhir_vcf.service.slot import EvaluationSlot


def test_waiters_get_the_slot_in_the_order_they_asked():
    slot, order = EvaluationSlot(), []
    slot.acquire()

    def call(name: str) -> None:
        with slot:
            order.append(name)

    threads = []
    for name in "abcde":
        thread = threading.Thread(target=call, args=(name,))
        thread.start()
        threads.append(thread)
        while len(slot._waiters) < len(threads):  # this one is queued before the next one asks
            time.sleep(0.001)
    slot.release()
    for thread in threads:
        thread.join(5)
    assert order == list("abcde")
    assert not slot.locked()


def test_a_release_hands_the_slot_over_before_anyone_else_can_take_it():
    """The thread that waited owns the slot from the release on: one that asks later, even while
    the waiter has not run yet, waits behind it."""
    slot, order = EvaluationSlot(), []
    slot.acquire()
    waiter = threading.Thread(target=lambda: (slot.acquire(), order.append("waiter"), slot.release()))
    waiter.start()
    while not slot._waiters:
        time.sleep(0.001)
    slot.release()
    assert slot.locked()  # the waiter's now, whether or not it has run
    with slot:
        order.append("later")
    waiter.join(5)
    assert order == ["waiter", "later"]


def test_the_slot_is_released_when_the_work_fails_and_cannot_be_released_twice():
    slot = EvaluationSlot()
    with pytest.raises(ValueError), slot:
        raise ValueError("the evaluation failed")
    assert not slot.locked()
    with pytest.raises(RuntimeError):
        slot.release()
