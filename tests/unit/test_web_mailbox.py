"""A page's mailbox (io/web.Page): what a page applies from one send is what it would have
applied from every change one by one: the newest value of each knob, of each step and of each
slot's round-robin count. Two steps set within one send both arrive."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from snaresynth.io import web
from snaresynth.io.web import Page

STEP = st.tuples(st.just("/seq/step"), st.integers(0, 3), st.integers(0, 15),
                 st.sampled_from([0.0, 0.9]))
KNOB = st.tuples(st.sampled_from(["/decay", "/level", "/latent/0"]),
                 st.floats(0.0, 1.0, allow_nan=False))
VARIANTS = st.tuples(st.just("/variants"), st.integers(1, 8), st.integers(0, 3))
CHANGES = st.lists(st.one_of(STEP, KNOB, VARIANTS, st.just(("/seq/clear",))), max_size=80)


def _apply(view: dict, address: str, args: list) -> None:
    """What the page does with one message (web_static/app.js, onSeq and setValue)."""
    if address == "/seq/step":
        view["steps"][(args[0], args[1])] = args[2]
    elif address == "/seq/clear":
        view["steps"] = {key: 0.0 for key in view["steps"]}
    elif address == "/variants":
        view["variants"][args[1]] = args[0]
    else:
        view["values"][address] = args[0]


def _view() -> dict:
    return {"steps": {}, "variants": {}, "values": {}}


def _settled(view: dict) -> dict:
    return {**view, "steps": {k: v for k, v in view["steps"].items() if v > 0}}


@given(CHANGES)
def test_one_send_shows_what_every_change_showed(changes: list[tuple]) -> None:
    loop = asyncio.new_event_loop()
    try:
        page = Page(ws=None, loop=loop)  # type: ignore[arg-type]  # the sender is not used
        page.take()
        one_by_one = _view()
        for address, *args in changes:
            page.push(address, list(args))
            _apply(one_by_one, address, list(args))
        messages, state_due, _ = page.take()
    finally:
        loop.close()
    assert not state_due
    batched = _view()
    for message in messages:
        _apply(batched, message["address"], message["args"])
    assert _settled(batched) == _settled(one_by_one)


def test_a_full_mailbox_sends_the_whole_state_again(monkeypatch) -> None:
    monkeypatch.setattr(web, "MAILBOX", 4)
    loop = asyncio.new_event_loop()
    try:
        page = Page(ws=None, loop=loop)  # type: ignore[arg-type]
        page.take()
        for step in range(6):
            page.push("/seq/step", [0, step, 0.9])
        messages, state_due, _ = page.take()
    finally:
        loop.close()
    assert state_due, "steps were dropped: the page must get the whole state"
    assert [m["args"][1] for m in messages] == [2, 3, 4, 5]
    assert page.dropped == 2
