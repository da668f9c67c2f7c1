"""The engine's numbered batches: split, joined and filtered without a tuple per record."""

from __future__ import annotations

from ml_dash.upload.engine import Batch
from ml_dash.upload.resume import Resume, resume_for


def test_a_batch_keeps_a_range_while_its_numbers_follow_on() -> None:
    a, b = Batch(range(3, 5), ["c", "d"]), Batch(range(5, 8), ["e", "f", "g"])
    joined = a.then(b)
    assert joined.numbers == range(3, 8) and joined.records == list("cdefg") and joined.follows_on
    gap = a.then(Batch(range(9, 10), ["j"]))
    assert gap.numbers == [3, 4, 9] and not gap.follows_on
    left, right = joined.halves()
    assert (left.numbers, left.records, right.numbers, right.records) == (range(3, 5), ["c", "d"], range(5, 8),
                                                                          ["e", "f", "g"])


def test_missing_leaves_out_what_the_server_has() -> None:
    batch = Batch(range(10), list(range(100, 110)))
    kept = batch.missing(Resume("w", ((2, 4), (8, 8))))
    assert kept.numbers == [0, 1, 5, 6, 7, 9] and kept.records == [100, 101, 105, 106, 107, 109]
    assert not kept.follows_on and Batch([5, 6, 7], [1, 2, 3]).follows_on


def test_by_position_with_an_unknown_length_the_last_stored_record_is_rechecked() -> None:
    there = {"logs": 5}
    assert resume_for(there, "logs", "logs", None, None) == Resume(None, ((0, 3),), recheck=4)
    assert resume_for(there, "logs", "logs", 9, None) == Resume(None, ((0, 3),))  # counted: more follow
    assert resume_for(there, "logs", "logs", 5, None) == Resume(None, ((0, 4),))  # counted: nothing new
    assert resume_for({"logs": 1}, "logs", "logs", None, None) == Resume(None, (), recheck=0)
