"""The changes the engine and the sequencer tell their listeners (``address, value``): which
of them name a target in their arguments. Surfaces that send only the newest value of each
change (a page's mailbox, the OSC subscribers' flush) key them with ``change_key``, so a
change of one step, slot or layer never hides the change of another."""

from __future__ import annotations

from typing import Any

TARGETS: dict[str, slice] = {
    "/seq/step": slice(0, 2),  # [slot, step, velocity]
    "/variants": slice(1, 2),  # [count, slot]
    "/buffer": slice(0, 2),  # [slot, layer]
}


def change_key(address: str, args: Any) -> tuple[Any, ...]:
    """The address, and for a ``TARGETS`` address the arguments that name what changed."""
    where = TARGETS.get(address)
    if where is None or not isinstance(args, list):
        return (address,)
    return (address, *args[where])
