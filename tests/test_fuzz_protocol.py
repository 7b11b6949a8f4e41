"""Fuzzing every decoder and the broker's socket handlers with hypothesis (bounded here; the longer run is
benchmarks/fuzz_protocol.py).

A decoder may only return a checked value or raise ProtocolError; the broker must answer a heartbeat after
any input on any of its sockets.
"""

from __future__ import annotations

import threading

import msgpack
import pytest
import zmq
from fuzz_inputs import DECODERS, JPEG, VALID, any_message, confused
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anjeon.broker.server import Broker, BrokerConfig
from anjeon.protocol import messages, wire
from anjeon.protocol.endpoints import free_base_port

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_messages_decode(kind):
    DECODERS[kind](msgpack.packb(VALID[kind](), use_bin_type=True))


@pytest.mark.parametrize("kind", sorted(VALID))
@FUZZ
@given(data=st.data())
def test_decoders_raise_only_the_protocol_error(kind, data):
    raw = data.draw(st.one_of(confused(kind), any_message()))
    try:
        DECODERS[kind](raw)
    except wire.ProtocolError as exc:
        assert exc.reason and str(exc)


@FUZZ
@given(raw=confused(wire.FRAME))
def test_the_hand_written_frame_decoder_agrees_with_its_declared_table(raw):
    """FrameHeader.from_map is spelled out for speed; it must accept exactly what FRAME_FIELDS accepts."""
    try:
        wire.FrameHeader.from_wire(raw)
        fast = True
    except wire.ProtocolError:
        fast = False
    try:
        messages.Record(messages.FRAME_FIELDS).check(wire.unpack(raw, wire.FRAME), "frame")
        table = True
    except wire.ProtocolError:
        table = False
    assert fast == table


@FUZZ
@given(raw=st.one_of(confused(wire.FRAME), any_message()))
def test_the_brokers_frame_decoder_agrees_with_the_wire_decoder(raw):
    """messages.decode_frame (the broker's inlined unpack) takes and refuses exactly what FrameHeader.from_wire
    does, for the same reason and with the same header."""

    def outcome(decode):
        try:
            return decode(raw)
        except wire.ProtocolError as exc:
            return exc.reason

    assert outcome(messages.decode_frame) == outcome(wire.FrameHeader.from_wire)


@FUZZ
@given(raw=confused(wire.CREDIT))
def test_the_inline_credit_decoder_agrees_with_its_declared_table(raw):
    try:
        messages.decode_worker_message(raw)
        fast = True
    except wire.ProtocolError:
        fast = False
    try:
        messages.decode_credit(raw)
        table = True
    except wire.ProtocolError:
        table = False
    assert fast == table


@FUZZ
@given(raw=confused(wire.HEARTBEAT + "/edge"))
def test_a_decoded_heartbeat_has_the_declared_types(raw):
    try:
        hb = messages.decode_control(raw)
    except wire.ProtocolError:
        return
    if isinstance(hb, messages.Heartbeat) and hb.role == "edge":
        for cam, info in hb.info["cameras"].items():
            assert wire.CAMERA_ID.match(cam)
            assert isinstance(info["capture_fps"], float) and isinstance(info["drops"], dict)
            assert all(type(v) is int for v in info["drops"].values())


class InProcessBroker:
    def __init__(self) -> None:
        self.ctx = zmq.Context()
        self.base = free_base_port()
        self.broker = Broker(BrokerConfig(bind="127.0.0.1", base_port=self.base), ctx=self.ctx)
        self.broker.bind()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.broker.serve, args=(self.stop,), daemon=True)
        self.thread.start()
        self.socks = {}
        for name, kind, offset in (
            ("frames", zmq.PUSH, 0),
            ("workers", zmq.DEALER, 1),
            ("results", zmq.PUB, 2),
            ("subs", zmq.XSUB, 3),
            ("control", zmq.DEALER, 4),
        ):
            sock = self.ctx.socket(kind)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(f"tcp://127.0.0.1:{self.base + offset}")
            self.socks[name] = sock

    def alive(self) -> bool:
        """The broker thread runs and answers a heartbeat."""
        control = self.socks["control"]
        while control.poll(0):
            control.recv_multipart()
        control.send(msgpack.packb(VALID[wire.HEARTBEAT + "/safety"]()))
        for _ in range(100):
            if control.poll(100):
                frames = control.recv_multipart()
                try:
                    messages.decode_hb_ack(frames[-1])
                    return self.thread.is_alive()
                except wire.ProtocolError:
                    continue
        return False

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.ctx.destroy(linger=0)


@pytest.fixture(scope="module")
def broker():
    b = InProcessBroker()
    assert b.alive()
    yield b
    b.close()


@FUZZ
@given(data=st.data())
def test_the_broker_survives_anything_on_any_socket(broker, data):
    name = data.draw(st.sampled_from(sorted(broker.socks)))
    parts = data.draw(st.lists(any_message(), min_size=1, max_size=3))
    if name == "frames" and data.draw(st.booleans()):
        parts = [data.draw(confused(wire.FRAME)), JPEG]
    broker.socks[name].send_multipart(parts)
    assert broker.broker.drops.total() >= 0
    if data.draw(st.integers(0, 9)) == 0:  # checking every time would make the run slow
        assert broker.alive()


def test_the_broker_is_alive_after_the_fuzzing(broker):
    assert broker.alive()
    assert broker.broker.drops.total() > 0
