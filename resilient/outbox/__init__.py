"""``resilient.outbox``: work that survives being offline.

An ``Outbox`` stores work durably (SQLite, WAL) before it is done, and delivers it later
with the handler registered for its kind, at least once, in order within a group,
setting aside as dead letters the items that keep failing.

.. code-block:: python

    outbox = Outbox("sqlite:///var/lib/app/outbox.db")

    @outbox.deferrable("submit_answer")
    def submit_answer(student: str, answer: str) -> dict: ...   # posts to the server

    receipt = submit_answer("ana", "42")   # offline: a Deferred receipt, not an error
    outbox.start()                         # delivers it once the server answers again
"""

from ._items import DeadItem, Deferred, Item, OutboxError
from ._outbox import Drained, Outbox, is_network_error

__all__ = [
    "DeadItem",
    "Deferred",
    "Drained",
    "Item",
    "Outbox",
    "OutboxError",
    "is_network_error",
]
