"""Approximate-time synchronisation of several message streams (no ROS import).

``message_filters`` has no wheel; this is the small piece the tracer needs:
each input has a bounded queue; when a message arrives, the synchroniser looks
for one message per other input whose stamp is within ``slop`` seconds of it
(the closest one), emits the matched tuple and discards everything at or
before the matched stamps. Messages that can no longer match are counted as
``unmatched``; queues never grow beyond ``queue_size``.
"""
from __future__ import annotations

import collections
from typing import Any


class ApproxTimeSync:
    """Match messages of ``num_inputs`` streams by stamp.

    Args:
        num_inputs: number of streams (e.g. 2: colour, depth).
        slop: maximum stamp difference (seconds) within a matched tuple.
        queue_size: messages kept per input while waiting for partners.
        restart_after: a stamp this many seconds older than the last match means
            the source restarted (e.g. a looping recording): queues are cleared.
    """

    def __init__(self, num_inputs: int, slop: float = 0.02, queue_size: int = 10, restart_after: float = 1.0):
        if num_inputs < 1:
            raise ValueError("num_inputs must be >= 1")
        if slop < 0:
            raise ValueError(f"slop must be >= 0 s, got {slop}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.num_inputs, self.slop, self.queue_size = num_inputs, float(slop), int(queue_size)
        self.restart_after = float(restart_after)
        self.restarts = 0
        self.queues: list[collections.deque] = [collections.deque() for _ in range(num_inputs)]
        self.matched = 0
        self.unmatched = 0      # messages discarded without partners (queue overflow or too old)
        self.late = 0           # messages older than the last matched tuple (discarded at once)
        self._last_matched = float("-inf")

    def add(self, index: int, stamp: float, msg: Any) -> tuple | None:
        """Add ``msg`` (stamp in seconds) to input ``index``; returns a matched tuple (one msg per input) or None."""
        stamp = float(stamp)
        if stamp <= self._last_matched - self.restart_after:
            self.clear()
            self.restarts += 1
        elif stamp <= self._last_matched:
            self.late += 1
            return None
        q = self.queues[index]
        q.append((stamp, msg))
        if len(q) > self.queue_size:
            q.popleft()
            self.unmatched += 1
        picks = []
        for j, other in enumerate(self.queues):
            if j == index:
                picks.append(len(q) - 1)
                continue
            if not other:
                return None
            best = min(range(len(other)), key=lambda k: abs(other[k][0] - stamp))
            if abs(other[best][0] - stamp) > self.slop:
                return None
            picks.append(best)
        out = tuple(self.queues[j][k][1] for j, k in enumerate(picks))
        newest = max(self.queues[j][k][0] for j, k in enumerate(picks))
        for j, k in enumerate(picks):
            # drop the match and everything before it; older leftovers never matched
            self.unmatched += k
            for _ in range(k + 1):
                self.queues[j].popleft()
        self._last_matched = newest
        self.matched += 1
        return out

    def clear(self) -> None:
        for q in self.queues:
            q.clear()
        self._last_matched = float("-inf")

    @property
    def pending(self) -> int:
        return sum(len(q) for q in self.queues)
