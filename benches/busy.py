"""A context manager that keeps one core busy while a benchmark measures under load."""

import contextlib
import multiprocessing
import time

__all__ = ["idle_and_loaded", "other_core_busy"]


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


def idle_and_loaded(model, indices):
    """Run the golden ``model`` over ``indices`` as one sequence on an idle machine, then
    again with the other core busy: the first run's results and seconds, and both rates in
    frames per second."""
    started = time.perf_counter()
    results = model.run(indices)
    seconds = time.perf_counter() - started
    with other_core_busy():
        model.begin_sequence()
        started = time.perf_counter()
        model.run(indices)
        loaded = len(indices) / (time.perf_counter() - started)
    return results, seconds, len(indices) / seconds, loaded
