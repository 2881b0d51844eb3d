"""A context manager that keeps one core busy while a benchmark measures under load."""

import contextlib
import multiprocessing
import time

__all__ = ["other_core_busy"]


def _spin(stop):
    while not stop.is_set():
        pass


@contextlib.contextmanager
def other_core_busy():
    """Run a spinning process for the duration of the block."""
    stop = multiprocessing.Event()
    spinner = multiprocessing.Process(target=_spin, args=(stop,), daemon=True)
    spinner.start()
    try:
        time.sleep(0.2)
        yield
    finally:
        stop.set()
        spinner.join()
