"""Approximate-time synchroniser of the tracer (pure Python)."""
import pytest

from traceany_ros.nodes.sync import ApproxTimeSync


def test_matches_within_slop_in_any_arrival_order():
    s = ApproxTimeSync(2, slop=0.01)
    assert s.add(0, 1.000, "c1") is None
    assert s.add(1, 1.004, "d1") == ("c1", "d1")
    assert s.add(1, 2.000, "d2") is None
    assert s.add(0, 2.003, "c2") == ("c2", "d2")
    assert s.matched == 2 and s.pending == 0


def test_outside_slop_does_not_match_and_old_partners_are_discarded():
    s = ApproxTimeSync(2, slop=0.01)
    s.add(0, 1.0, "c1")            # its depth never comes
    assert s.add(1, 1.5, "d15") is None
    assert s.add(0, 1.505, "c15") == ("c15", "d15")
    assert s.unmatched == 1 and s.pending == 0


def test_queues_are_bounded():
    s = ApproxTimeSync(2, slop=0.001, queue_size=5)
    for i in range(100):
        s.add(0, float(i), i)
    assert s.pending == 5 and s.unmatched == 95


def test_late_and_duplicate_stamps_are_dropped_and_restart_is_detected():
    s = ApproxTimeSync(2, slop=0.01, restart_after=1.0)
    s.add(0, 5.0, "c")
    assert s.add(1, 5.0, "d") == ("c", "d")
    assert s.add(0, 5.0, "dup") is None and s.add(0, 4.9, "old") is None
    assert s.late == 2
    # a jump far back: the source restarted; matching resumes
    s.add(0, 0.1, "c0")
    assert s.add(1, 0.1, "d0") == ("c0", "d0") and s.restarts == 1


def test_three_inputs_and_argument_checks():
    s = ApproxTimeSync(3, slop=0.02)
    s.add(0, 1.0, "a")
    s.add(1, 1.01, "b")
    assert s.add(2, 0.995, "c") == ("a", "b", "c")
    with pytest.raises(ValueError):
        ApproxTimeSync(2, slop=-1)
