"""Work on a second thread while the caller does other work: for large logs only.

NumPy's sorts and searches, Arrow's reader and the monitoring kernels (compiled with
``nogil``) release the GIL, so two independent computations on a million rows can run
on two cores. Each use here is a pure function of inputs nobody writes meanwhile, so
the results never depend on which thread runs first.
"""

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Beside(Generic[T]):
    """``function(*args)``, run on its own thread when ``concurrent``, else at once.

    Args:
        concurrent: run on another thread (worth it for large inputs only: a thread
            costs some tens of microseconds to start).
        function: what to compute.
        *args: its arguments (not written by anyone until :meth:`result` returns).
    """

    def __init__(self, concurrent: bool, function: Callable[..., T], *args: object) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if concurrent:
            self._thread = threading.Thread(target=self._run, args=(function, args))
            self._thread.start()
        else:
            self._value = function(*args)

    def _run(self, function: Callable[..., T], args: tuple[object, ...]) -> None:
        try:
            self._value = function(*args)
        except BaseException as err:  # handed to the caller by result()
            self._error = err

    def result(self) -> T:
        """The value (waits for the thread); re-raises the function's error."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]
