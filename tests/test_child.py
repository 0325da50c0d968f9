"""The one child-process transport (`docsync.plugin.child`) of the shard host and the reader:
typed messages both ways, a deadline on each wait, and the end of the other side noticed."""

from __future__ import annotations

import socket

import pytest

from docsync.plugin.child import Channel, Child, ChildGone, ChildTimeout


def pair() -> tuple[Channel[str, int], Channel[int, str]]:
    ours, theirs = socket.socketpair()
    return Channel(ours.detach()), Channel(theirs.detach())


def test_messages_cross_both_ways() -> None:
    parent, child = pair()
    try:
        parent.send("question")
        assert child.receive() == "question"
        child.send(42)
        assert parent.receive() == 42
    finally:
        parent.close()
        child.close()


def test_a_wait_past_its_deadline_is_a_timeout_not_a_death() -> None:
    parent, child = pair()
    try:
        with pytest.raises(ChildTimeout):
            parent.receive(timeout=0.01)  # fixed: nothing is ever sent, it must fire
        child.send(1)  # the channel still works
        assert parent.receive() == 1
    finally:
        parent.close()
        child.close()


def test_the_end_of_the_other_side_is_noticed() -> None:
    parent, child = pair()
    child.close()
    with pytest.raises(ChildGone):
        parent.receive()
    parent.close()
    assert parent.closed


def test_a_child_that_is_killed_is_gone() -> None:
    # The reader child waits for its first request once it has said it is ready.
    child: Child[tuple[str, bytes], object] = Child("docsync.worker.formats.isolated", ["2048"])
    try:
        assert isinstance(child.receive(), int)  # ready: its unresident bytes
        assert child.alive
        child.kill()
        with pytest.raises(ChildGone):
            child.receive()
        assert child.wait() < 0 and not child.alive
    finally:
        child.close()


def test_a_channel_closed_by_another_thread_while_one_reads_is_a_gone_child() -> None:
    """A thread that waits on a channel another thread closes (a child found dead) gets
    ChildGone, never the TypeError multiprocessing raises for a handle closed under it."""
    import socket as socket_module
    import threading as threading_module

    ours, theirs = socket_module.socketpair()
    channel: Channel[str, str] = Channel(ours.detach())
    failures: list[BaseException] = []

    def read() -> None:
        try:
            channel.receive()
        except BaseException as exc:
            failures.append(exc)

    reader = threading_module.Thread(target=read)
    reader.start()
    channel.close()
    theirs.close()
    reader.join(30)
    assert not reader.is_alive()
    assert len(failures) == 1 and isinstance(failures[0], ChildGone), failures
