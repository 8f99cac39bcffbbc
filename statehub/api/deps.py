"""Dependencies shared by the controllers."""

from __future__ import annotations

from collections.abc import Iterator

from litestar.datastructures import State
from sqlalchemy import Connection

from statehub.hub import Hub

__all__ = ["provide_conn", "provide_hub"]


def provide_hub(state: State) -> Hub:
    hub: Hub = state.hub
    return hub


def provide_conn(state: State) -> Iterator[Connection]:
    hub: Hub = state.hub
    with hub.engine.connect() as conn:
        yield conn
