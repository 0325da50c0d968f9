"""Questions asked at once are embedded together (plugin/embedding/combine.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from docsync.plugin.embedding.combine import Combiner


def vector_of(text: str) -> np.ndarray:
    return np.full(3, float(len(text)), dtype=np.float32)


class Model:
    """`one` and `many` that record their calls; `one` holds until `release` while `hold`."""

    def __init__(self) -> None:
        self.ones: list[str] = []
        self.manys: list[list[str]] = []
        self.hold = threading.Event()
        self.release = threading.Event()
        self.fail_many = False

    def one(self, text: str) -> np.ndarray:
        self.ones.append(text)
        if self.hold.is_set():
            assert self.release.wait(30)
        return vector_of(text)

    def many(self, texts: Sequence[str]) -> np.ndarray:
        self.manys.append(list(texts))
        if self.fail_many:
            raise RuntimeError("the pass failed")
        return np.stack([vector_of(t) for t in texts])


def poll(condition: Callable[[], bool], deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "condition not met before the deadline"
        time.sleep(0.005)


def ask_in_threads(combiner: Combiner, texts: list[str]) -> tuple[list[threading.Thread], dict]:
    answers: dict[str, object] = {}

    def ask(text: str) -> None:
        try:
            answers[text] = combiner(text)
        except Exception as exc:
            answers[text] = exc

    threads = [threading.Thread(target=ask, args=(t,)) for t in texts]
    for thread in threads:
        thread.start()
    return threads, answers


def test_a_lone_question_is_embedded_at_once_on_its_own() -> None:
    model = Model()
    combiner = Combiner(model.one, model.many)
    assert combiner("how?").tolist() == vector_of("how?").tolist()
    assert combiner("why not?").tolist() == vector_of("why not?").tolist()
    assert model.ones == ["how?", "why not?"] and model.manys == []


def test_questions_that_wait_for_a_pass_are_embedded_together() -> None:
    model = Model()
    combiner = Combiner(model.one, model.many)
    model.hold.set()
    first, first_answer = ask_in_threads(combiner, ["first"])
    poll(lambda: model.ones == ["first"])  # the first pass runs, and holds
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    threads, answers = ask_in_threads(combiner, texts)
    poll(lambda: len(combiner._waiting) == len(texts))
    model.release.set()
    for thread in [*first, *threads]:
        thread.join(30)
    assert model.ones == ["first"]
    assert len(model.manys) == 1 and sorted(model.manys[0]) == texts
    for text in texts:  # each caller gets its own question's vector
        assert answers[text].tolist() == vector_of(text).tolist()  # type: ignore[attr-defined]
    assert first_answer["first"].tolist() == vector_of("first").tolist()  # type: ignore[attr-defined]


def test_a_group_is_at_most_most_questions() -> None:
    model = Model()
    combiner = Combiner(model.one, model.many, most=2)
    model.hold.set()
    first, _ = ask_in_threads(combiner, ["first"])
    poll(lambda: model.ones == ["first"])
    threads, answers = ask_in_threads(combiner, ["a", "b", "c", "d", "e"])
    poll(lambda: len(combiner._waiting) == 5)
    model.hold.clear()
    model.release.set()
    for thread in [*first, *threads]:
        thread.join(30)
    passes = [[text] for text in model.ones[1:]] + model.manys
    assert all(len(p) <= 2 for p in passes)
    assert sorted(t for p in passes for t in p) == ["a", "b", "c", "d", "e"]
    assert len(answers) == 5


def test_a_failed_pass_raises_in_every_caller_of_its_group_and_the_next_still_runs() -> None:
    model = Model()
    combiner = Combiner(model.one, model.many)
    model.hold.set()
    first, _ = ask_in_threads(combiner, ["first"])
    poll(lambda: model.ones == ["first"])
    threads, answers = ask_in_threads(combiner, ["a", "b"])
    poll(lambda: len(combiner._waiting) == 2)
    model.fail_many = True
    model.release.set()
    for thread in [*first, *threads]:
        thread.join(30)
    assert all(isinstance(answers[t], RuntimeError) for t in ("a", "b"))
    model.hold.clear()
    assert combiner("again").tolist() == vector_of("again").tolist()  # not left busy


def test_an_error_in_a_lone_pass_reaches_its_caller() -> None:
    def broken(text: str) -> np.ndarray:
        raise ValueError("no")

    combiner = Combiner(broken, Model().many)
    with pytest.raises(ValueError):
        combiner("x")
    with pytest.raises(ValueError):
        combiner("y")


def test_every_question_is_embedded_on_one_thread_whoever_asks() -> None:
    """Questions from many threads run on the combiner's one thread: the model's OpenMP work
    keeps one team, not one per asking thread (docsync.plugin.embedding.teams)."""
    runs_on: set[str] = set()

    def one(text: str) -> np.ndarray:
        runs_on.add(threading.current_thread().name)
        return vector_of(text)

    def many(texts: Sequence[str]) -> np.ndarray:
        runs_on.add(threading.current_thread().name)
        return np.stack([vector_of(t) for t in texts])

    combiner = Combiner(one, many)
    threads, answers = ask_in_threads(combiner, [f"q{i}" * (i + 1) for i in range(12)])
    for thread in threads:
        thread.join(30)
    assert combiner("main") is not None
    assert len(answers) == 12 and runs_on == {"docsync-questions"}
