"""Exit paths of an agent process: the SDK flushes its tail on each of them.

- interpreter exit: ``atexit`` (registered by each client);
- SIGTERM / SIGINT: a handler that flushes every live client within its
  ``shutdown_timeout_s``, then chains to the handler that was installed before (the
  application's, or the default: SIGTERM then still terminates the process, SIGINT still
  raises ``KeyboardInterrupt``). Installed once, from the main thread, when the first client
  with ``flush_at_exit`` is created; a handler the application installs later replaces it
  (call ``meterline.producers.shutdown()`` from it, or install yours first);
- multiprocessing children (fork, forkserver, spawn) end with ``os._exit``, which skips
  ``atexit``: each client also registers a ``multiprocessing.util.Finalize``, which the
  child runs before it exits; a client inherited through ``fork`` gets a new sender thread
  and a new librdkafka producer in the child (the parent's threads do not survive a fork).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import weakref
from multiprocessing import util as mp_util
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meterline.producers.sdk import MeterlineClient

log = logging.getLogger("producers")

_clients: weakref.WeakSet[MeterlineClient] = weakref.WeakSet()
_lock = threading.Lock()
_installed = False
_previous: dict[int, Any] = {}
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def register(client: MeterlineClient) -> None:
    """Make ``client`` flush on every exit path (see the module docstring)."""
    global _installed
    with _lock:
        _clients.add(client)
        first = not _installed
        _installed = True
    if first:
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _install_signal_handlers()
    _finalize_in_child(client)
    mp_util.register_after_fork(client, _finalize_in_child)


def unregister(client: MeterlineClient) -> None:
    with _lock:
        _clients.discard(client)


def _finalize_in_child(client: MeterlineClient) -> None:
    mp_util.Finalize(client, client.close_at_exit, exitpriority=100)


def _install_signal_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # signal.signal works only there; atexit still flushes
    for sig in _SIGNALS:
        try:
            _previous[sig] = signal.getsignal(sig)
            signal.signal(sig, _on_signal)
        except (ValueError, OSError) as exc:  # e.g. an embedded interpreter
            log.info("meterline: cannot install a %s handler: %s", sig, exc)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    previous = _previous.get(signum, signal.SIG_DFL)
    dying = previous == signal.SIG_DFL
    for client in list(_clients):
        try:
            if dying:  # the process ends next: close (spool or count what is not delivered)
                client.close()
            else:  # the application's handler decides; the client stays usable
                client.flush(client.shutdown_timeout_s)
        except Exception:
            log.exception("meterline: flushing on signal %d failed", signum)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)  # terminate as the default would (exit status -signum)


def _after_fork_in_child() -> None:
    for client in list(_clients):
        try:
            client.after_fork()
        except Exception:
            log.exception("meterline: restarting a client after fork failed")
