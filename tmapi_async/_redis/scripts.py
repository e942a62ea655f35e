"""The Lua scripts of a distributed harvest: each step that must not half-happen.

Redis runs a script atomically, so a process killed between two commands of one step
cannot leave the step half done: a shop is never submitted twice, a page never
committed twice, and a shop's final status exists exactly when its final result does.
Scripts touch only the keys they are given (standalone Redis; see ``queue.py`` for
the key layout). Their sources live in ``lua/``, each with its keys, arguments and
reply in its opening comment.
"""

from __future__ import annotations

from typing import Final

from .connection import load_lua

__all__ = [
    "ATTACH",
    "COMMIT_PAGES",
    "CONTROL",
    "FINISH_SHOP",
    "HAND_BACK",
    "HEARTBEAT",
    "SUBMIT",
    "TAKE",
    "TAKE_OVER",
    "WORKER_BEAT",
]

SUBMIT: Final = load_lua("queue_submit")  #: a shop, once (again if it failed before)
COMMIT_PAGES: Final = load_lua("queue_commit_pages")  #: answered pages, fenced, once each
FINISH_SHOP: Final = load_lua("queue_finish_shop")  #: a shop's final status, fenced
TAKE: Final = load_lua("queue_take")  #: new shops, with what Redis holds of each
HEARTBEAT: Final = load_lua("queue_heartbeat")  #: renew the shops a worker still holds
TAKE_OVER: Final = load_lua("queue_take_over")  #: shops whose holder stopped renewing
HAND_BACK: Final = load_lua("queue_hand_back")  #: shops given back by a stopping worker
WORKER_BEAT: Final = load_lua("worker_beat")  #: a worker's heartbeat, on Redis's clock
CONTROL: Final = load_lua("harvest_control")  #: pause, resume, cancel
ATTACH: Final = load_lua("coordinator_attach")  #: a coordinator's attached marker
