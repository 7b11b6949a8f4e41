"""The broker's scheduling, frame by frame: newest-only slots, round robin, credit accounting."""

from anjeon.broker.scheduler import CreditOutcome, FrameScheduler, Pending
from anjeon.protocol.wire import FrameHeader


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def pending(camera: str, seq: int, clock: Clock) -> Pending:
    h = FrameHeader(camera=camera, run="r", seq=seq, t_capture=0.0, width=1, height=1, size=1)
    return Pending(h, b"\xff\xd8", clock())


def drain(s: FrameScheduler) -> list[tuple[str, str, int]]:
    out = []
    while (picked := s.next()) is not None:
        slot, frame = picked
        out.append((slot.proc, frame.header.camera, frame.header.seq))
    return out


def test_keeps_only_the_newest_frame_per_camera():
    clock = Clock()
    s = FrameScheduler("b", max_age=1.0, clock=clock)
    assert s.offer("a", pending("a", 1, clock)) is None
    replaced = s.offer("a", pending("a", 2, clock))
    assert replaced.header.seq == 1
    s.offer("a", pending("a", 3, clock))
    s.ready("w1", b"id1", 4)
    assert drain(s) == [("w1", "a", 3)]


def test_pending_is_bounded_by_cameras_whatever_the_load():
    clock = Clock()
    s = FrameScheduler("b", max_age=1.0, clock=clock)
    for seq in range(1000):
        s.offer(f"cam{seq % 4}", pending(f"cam{seq % 4}", seq, clock))
    assert s.pending_count() == 4


def test_round_robin_across_cameras():
    clock = Clock()
    s = FrameScheduler("b", max_age=10.0, clock=clock)
    slot = s.ready("w1", b"id1", 1)
    served = []
    for seq in range(9):
        for cam in ("a", "b", "c"):
            s.offer(cam, pending(cam, seq, clock))
        picked = s.next()
        served.append(picked[1].header.camera)
        assert s.next() is None  # credit 1: nothing more until the worker returns it
        assert s.credit("w1", slot.grant, 1) == CreditOutcome.OK
    assert served == ["a", "b", "c"] * 3


def test_no_credit_no_dispatch_and_credit_is_capped():
    clock = Clock()
    s = FrameScheduler("b", max_age=10.0, clock=clock)
    s.offer("a", pending("a", 1, clock))
    assert s.next() is None  # no worker
    slot = s.ready("w1", b"id1", 2)
    s.credit("w1", slot.grant, 50)  # a confused worker cannot inflate its credit
    assert s.workers()["w1"].credit == 2


def test_stale_and_unknown_credit():
    clock = Clock()
    s = FrameScheduler("b", max_age=10.0, clock=clock)
    old = s.ready("w1", b"id1", 1)
    s.offer("a", pending("a", 1, clock))
    assert s.next() is not None
    new = s.ready("w1", b"id1", 1)  # the worker announced itself again (e.g. after a broker hiccup)
    assert new.grant != old.grant
    assert s.credit("w1", old.grant, 1) == CreditOutcome.STALE
    assert s.workers()["w1"].credit == 1
    assert s.credit("ghost", "x", 1) == CreditOutcome.UNKNOWN


def test_load_goes_to_the_worker_with_most_credit_then_alternates():
    clock = Clock()
    s = FrameScheduler("b", max_age=10.0, clock=clock)
    s.ready("w1", b"1", 1)
    s.ready("w2", b"2", 3)
    for cam in "abcd":
        s.offer(cam, pending(cam, 1, clock))
    assert [w for w, _, _ in drain(s)] == ["w2", "w2", "w1", "w2"]


def test_forgotten_worker_gets_nothing():
    clock = Clock()
    s = FrameScheduler("b", max_age=10.0, clock=clock)
    s.ready("w1", b"1", 1)
    s.ready("w2", b"2", 1)
    s.forget("w1")
    for cam in "ab":
        s.offer(cam, pending(cam, 1, clock))
    assert [w for w, _, _ in drain(s)] == ["w2"]


def test_frames_expire_when_no_worker_is_free():
    clock = Clock()
    s = FrameScheduler("b", max_age=1.0, clock=clock)
    s.offer("a", pending("a", 1, clock))
    clock.t += 0.5
    s.offer("b", pending("b", 1, clock))
    clock.t += 0.7
    expired = s.expire()
    assert [p.header.camera for p in expired] == ["a"]
    s.ready("w1", b"1", 5)
    assert drain(s) == [("w1", "b", 1)]


def test_silent_workers():
    clock = Clock()
    s = FrameScheduler("b", max_age=1.0, clock=clock)
    s.ready("w1", b"1", 1)
    s.ready("w2", b"2", 1)
    clock.t += 2
    s.touch("w2")
    clock.t += 2
    assert s.silent_workers(3.0) == ["w1"]
