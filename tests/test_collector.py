"""The collector pause around reading a record gives the caller's setting back (issue 11)."""

from __future__ import annotations

import gc
import threading

from fhir_vcf import collector


def test_paused_restores_an_enabled_collector_even_after_an_error():
    assert gc.isenabled()
    try:
        with collector.paused():
            assert not gc.isenabled()
            raise ValueError("boom")
    except ValueError:
        pass
    assert gc.isenabled()


def test_a_caller_who_disabled_the_collector_keeps_it_disabled():
    gc.disable()
    try:
        with collector.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_comes_back_when_the_last_of_several_threads_is_done():
    inside, release = threading.Barrier(3), threading.Event()

    def judge() -> None:
        with collector.paused():
            inside.wait()
            release.wait()

    first = threading.Thread(target=judge)
    second = threading.Thread(target=judge)
    first.start(), second.start()
    inside.wait()
    assert not gc.isenabled()
    with collector.paused():  # nested in this thread too
        pass
    assert not gc.isenabled()  # two threads still judging
    release.set()
    first.join(), second.join()
    assert gc.isenabled()
