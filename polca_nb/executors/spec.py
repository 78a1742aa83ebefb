"""`executor=` as a user writes it: a thread count, a Dask scheduler address or a Dask client.

    polca(..., executor=8)                       # 8 local threads (as before)
    polca(..., executor="dask://scheduler:8786") # a DaskExecutor on that scheduler, closed after the run
    polca(..., executor=client)                  # a DaskExecutor on your distributed.Client (left open)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence, TypeVar

SCHEME = "dask://"

T = TypeVar("T")
R = TypeVar("R")


def is_dask_client(obj: Any) -> bool:
    """True for a `distributed.Client` (checked by type, so `distributed` is imported only when used)."""
    return any(cls.__module__.startswith("distributed") and cls.__name__ == "Client" for cls in type(obj).__mro__)


def scheduler_address(spec: str) -> str:
    """"dask://host:port" -> "tcp://host:port"; ValueError for any other string."""
    if not spec.startswith(SCHEME) or not spec[len(SCHEME):]:
        raise ValueError(f"executor={spec!r}: a string executor must be a Dask scheduler address "
                         f"'{SCHEME}host:port' (e.g. '{SCHEME}127.0.0.1:8786')")
    return "tcp://" + spec[len(SCHEME):]


@dataclass
class DaskAddress:
    """The executor for a `dask://host:port` address: connects on its first call, so naming an
    unreachable scheduler costs nothing until the run evaluates; `close()` closes the client it opened."""

    address: str
    _executor: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        scheduler_address(self.address)  # a malformed address fails here, before the run starts

    def connected(self) -> Any:
        """The DaskExecutor on this address (the client is opened on first use)."""
        if self._executor is None:
            from distributed import Client  # noqa: PLC0415 - distributed is the optional `cluster` extra

            from .dask_executor import DaskExecutor  # noqa: PLC0415
            self._executor = DaskExecutor(Client(scheduler_address(self.address)), owns_client=True)
        return self._executor

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        return self.connected().map(fn, items)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.close()
            self._executor = None


def dask_executor_for(spec: Any) -> Any:
    """The executor for a `dask://` address (`DaskAddress`) or for a `distributed.Client` (`DaskExecutor`)."""
    if isinstance(spec, str):
        return DaskAddress(spec)
    if is_dask_client(spec):
        from .dask_executor import DaskExecutor  # noqa: PLC0415 - distributed is the optional `cluster` extra
        return DaskExecutor(spec)
    raise TypeError(f"expected a '{SCHEME}host:port' address or a distributed.Client, got {type(spec).__name__}")
