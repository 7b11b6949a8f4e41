"""The broker's scheduling, frame by frame: newest-only slots, round robin, credit accounting."""

from anjeon.broker.scheduler import CreditOutcome, FrameScheduler, OfferOutcome, Pending, ReadyOutcome
from anjeon.broker.state import BrokerState
from anjeon.protocol.wire import FrameHeader


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def pending(camera: str, seq: int, clock: Clock, claimed: bool = True) -> Pending:
    h = FrameHeader(camera=camera, run="r", seq=seq, t_capture=0.0, width=1, height=1, size=1)
    return Pending(h, b"\xff\xd8", clock(), claimed=claimed)


def ready(s: FrameScheduler, proc: str, ident: bytes, credit: int):
    outcome, slot = s.ready(proc, ident, credit)
    assert outcome in (ReadyOutcome.NEW, ReadyOutcome.RESET), outcome
    return slot


def drain(s: FrameScheduler) -> list[tuple[str, str, int]]:
    out = []
    while (picked := s.next()) is not None:
        slot, frame = picked
        out.append((slot.proc, frame.header.camera, frame.header.seq))
    return out


def test_keeps_only_the_newest_frame_per_camera():
    clock = Clock()
    s = FrameScheduler("b", max_age=1.0, clock=clock)
    assert s.offer("a", pending("a", 1, clock)) == (OfferOutcome.NEW, None)
    outcome, replaced = s.offer("a", pending("a", 2, clock))
    assert outcome == OfferOutcome.REPLACED and replaced.header.seq == 1
    s.offer("a", pending("a", 3, clock))
    ready(s, "w1", b"id1", 4)
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
    slot = ready(s, "w1", b"id1", 1)
    served = []
    for seq in range(9):
        for cam in ("a", "b", "c"):
            s.offer(cam, pending(cam, seq, clock))
        picked = s.next()
        served.append(picked[1].header.camera)
        assert s.next() is None  # credit 1: nothing more until the worker returns it
        assert s.credit("w1", b"id1", slot.grant, 1) == CreditOutcome.OK
    assert served == ["a", "b", "c"] * 3


def test_no_credit_no_dispatch_and_credit_is_capped():
    clock = Clock()
    s = FrameScheduler("b", max_age=10.0, clock=clock)
    s.offer("a", pending("a", 1, clock))
    assert s.next() is None  # no worker
    slot = ready(s, "w1", b"id1", 2)
    s.credit("w1", b"id1", slot.grant, 50)  # a confused worker cannot inflate its credit
    assert s.workers()["w1"].credit == 2


def test_stale_and_unknown_credit():
    clock = Clock()
    s = FrameScheduler("b", max_age=10.0, clock=clock)
    old_grant = ready(s, "w1", b"id1", 1).grant
    s.offer("a", pending("a", 1, clock))
    assert s.next() is not None
    clock.t += 1.0  # re-announcing is heeded at most every ready_interval
    new = ready(s, "w1", b"id1", 1)  # the worker announced itself again (e.g. after a broker hiccup)
    assert new.grant != old_grant
    assert s.workers()["w1"].credit == 0  # re-announcing does not refill: the frame it holds still counts
    assert s.credit("w1", b"id1", old_grant, 1) == CreditOutcome.OK  # that frame done, under the old grant
    assert s.workers()["w1"].credit == 1
    assert s.credit("w1", b"id1", "otherbroker.1", 1) == CreditOutcome.STALE  # from before a broker restart
    assert s.credit("ghost", b"id1", "x", 1) == CreditOutcome.UNKNOWN


def test_frames_never_credited_are_presumed_lost():
    clock = Clock()
    s = FrameScheduler("b", max_age=10.0, clock=clock, lost_after=10.0)
    ready(s, "w1", b"1", 1)
    s.offer("a", pending("a", 1, clock))
    assert s.next() is not None
    s.offer("a", pending("a", 2, clock))
    assert s.next() is None  # w1 holds its one frame
    clock.t += 11
    assert s.next()[1].header.seq == 2


def test_dispatch_is_fair_not_most_credit_first():
    clock = Clock()
    s = FrameScheduler("b", max_age=10.0, clock=clock)
    ready(s, "w1", b"1", 1)
    ready(s, "w2", b"2", 3)
    for cam in "abcd":
        s.offer(cam, pending(cam, 1, clock))
    # Fewest frames in flight first, ties to the one served least recently: w2's bigger credit buys it nothing
    # while w1 is free.
    assert [w for w, _, _ in drain(s)] == ["w1", "w2", "w2", "w2"]


def test_a_rogue_worker_announcing_huge_credit_gets_frames_only_while_the_honest_one_is_busy():
    clock = Clock()
    s = FrameScheduler("b", max_age=10.0, clock=clock, max_credit=4)
    honest = ready(s, "honest", b"h", 1)
    rogue = ready(s, "rogue", b"r", 1024)
    assert rogue.capacity == 4  # capped
    got = {"honest": 0, "rogue": 0}
    for seq in range(100):  # the honest worker answers every frame at once; the rogue never does
        s.offer("cam", pending("cam", seq, clock))
        picked = s.next()
        if picked is None:
            continue
        got[picked[0].proc] += 1
        if picked[0].proc == "honest":
            assert s.credit("honest", b"h", honest.grant, 1) == CreditOutcome.OK
        clock.t += 0.1
        s.ready("rogue", b"r", 1024)  # re-announcing does not refill the credit of frames it holds
    assert got["honest"] >= 96 and got["rogue"] <= 4


def test_a_process_id_belongs_to_the_connection_that_announced_it():
    clock = Clock()
    s = FrameScheduler("b", max_age=10.0, clock=clock)
    real = ready(s, "w1", b"real", 2)
    clock.t += 2
    assert s.credit("w1", b"real", real.grant, 1) == CreditOutcome.OK
    clock.t += 2
    outcome, slot = s.ready("w1", b"impostor", 1024)
    assert outcome == ReadyOutcome.CONFLICT and slot is real and s.workers()["w1"].ident == b"real"
    assert s.credit("w1", b"impostor", real.grant, 1) == CreditOutcome.CONFLICT
    # A worker that reconnected (new routing id) takes its id back once the old connection has gone quiet.
    clock.t += 4
    outcome, slot = s.ready("w1", b"reconnected", 2)
    assert outcome == ReadyOutcome.NEW and slot.ident == b"reconnected"


def test_bounded_workers_and_pending_frames_claimed_cameras_first():
    clock = Clock()
    s = FrameScheduler("b", max_age=10.0, clock=clock, max_pending=3, max_workers=2)
    ready(s, "w1", b"1", 1)
    ready(s, "w2", b"2", 1)
    assert s.ready("w3", b"3", 1)[0] == ReadyOutcome.FULL
    for i in range(3):
        assert s.offer(f"fake{i}", pending(f"fake{i}", 1, clock, claimed=False))[0] == OfferOutcome.NEW
    assert s.offer("fake9", pending("fake9", 1, clock, claimed=False)) == (OfferOutcome.FULL, None)
    outcome, pushed = s.offer(
        "real", pending("real", 1, clock)
    )  # a claimed camera pushes an invented one out
    assert outcome == OfferOutcome.NEW and pushed.header.camera == "fake0"
    assert s.pending_count() == 3
    assert [c for _, c, _ in drain(s)] == ["real", "fake1"]  # claimed cameras are served first


def test_forgotten_worker_gets_nothing():
    clock = Clock()
    s = FrameScheduler("b", max_age=10.0, clock=clock)
    ready(s, "w1", b"1", 1)
    ready(s, "w2", b"2", 1)
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
    ready(s, "w1", b"1", 5)
    assert drain(s) == [("w1", "b", 1)]


def test_silent_workers():
    # Liveness is judged once (BrokerState.sweep): heartbeats (the registry) or the worker's own
    # frames-out connection (ready/credit) within the timeout keep its credit.
    clock = Clock()
    state = BrokerState("b", max_age=1.0, clock=clock)
    s = state.scheduler
    ready(s, "w1", b"1", 1)
    ready(s, "w2", b"2", 1)
    w3 = ready(s, "w3", b"3", 1)
    clock.t += 2
    state.registry.beat("w2", "worker", "worker-2", {}, b"control-2")
    assert s.credit("w3", b"3", w3.grant, 1) == CreditOutcome.OK
    clock.t += 2
    gone, dead = state.sweep()
    assert [slot.proc for slot in dead] == ["w1"]
    assert sorted(s.workers()) == ["w2", "w3"]


def test_one_state_per_camera_flow_pending_and_report():
    clock = Clock()
    state = BrokerState("b", max_age=10.0, clock=clock, max_cameras=2, camera_idle=5.0)
    cams = state.cameras
    a = cams.admit("a", clock())
    assert a is not None and cams.admit("b", clock()) is not None
    assert cams.admit("c", clock()) is None  # two cameras streaming, neither idle: no room
    state.scheduler.offer("a", pending("a", 1, clock))
    assert cams.get("a") is a and a.pending is not None and state.scheduler.pending_count() == 1
    state.registry.beat("e1", "edge", "edge-1", {"cameras": {"a": {"state": "streaming"}, "z": {}}}, b"e")
    state.sweep()
    assert a.claimed and a.reporter is not None and a.reporter.name == "edge-1"
    assert [c.name for c in cams.listed()] == ["a", "b", "z"]  # z: reported by its edge, no frame yet
    clock.t += 6
    assert cams.admit("a", clock()) is a  # a streams on
    assert cams.admit("c", clock()) is not None  # b was silent long enough: c takes its place
    assert [c.name for c in cams.listed()] == ["a", "c", "z"]
    assert ready(s := state.scheduler, "w1", b"1", 1) is not None and s.next()[1].header.camera == "a"
    assert a.pending is None and s.pending_count() == 0


def test_a_camera_claimed_while_its_frame_waits_is_served_in_turn():
    """A camera's first frame can arrive before its edge's heartbeat claims it: once claimed, it takes turns
    with the other claimed cameras even though every new frame of it replaces a waiting one."""
    clock = Clock()
    s = FrameScheduler("b", max_age=10.0, clock=clock)
    slot = ready(s, "w1", b"id1", 1)
    s.offer("late", pending("late", 0, clock, claimed=False))  # before its edge's heartbeat
    served = []
    for seq in range(1, 9):
        for cam in ("a", "late"):  # both claimed now, each always has a frame waiting
            s.offer(cam, pending(cam, seq, clock))
        served.append(s.next()[1].header.camera)
        assert s.credit("w1", b"id1", slot.grant, 1) == CreditOutcome.OK
    assert served.count("late") == served.count("a") == 4, served
