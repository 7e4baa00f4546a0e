"""What a batch hands back (``BatchResult``) and what it reports while it runs (``BatchProgress``).

A result always has one ``ModelResponse`` per input row, in input order: a failed row is an
answer with ``finish_reason == "error"`` and ``error`` set, an unfinished one (cancel,
interrupt) has ``finish_reason == "cancelled"``. So ``result[i]`` is row ``i``, whatever
happened, and ``to_pandas()`` lines up with the input's index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from ..secrets import redact

if TYPE_CHECKING:
    from ..backends._response import ModelResponse
    from ..backends._schema import OutputSchema


@dataclass(frozen=True)
class BatchProgress:
    """One progress report: counts only, never model output (a bar shows it as it is)."""

    done: int
    total: int
    errors: int = 0
    retries: int = 0
    #: Rows answered from the answer log (resume), counted in ``done``.
    cached: int = 0
    elapsed: float = 0.0
    finished: bool = False
    cancelled: bool = False

    @property
    def rate(self) -> float | None:
        """Rows answered per second by the backend (log answers are free, so not counted)."""
        sent = self.done - self.cached
        return sent / self.elapsed if self.elapsed > 0 and sent > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate; None until a row was answered."""
        rate = self.rate
        return None if rate is None else (self.total - self.done) / rate

    def line(self) -> str:
        """``12/64 rows · 3.1 rows/s · ETA 17 s · 1 error · 2 retries``."""
        parts = [f"{self.done}/{self.total} rows"]
        rate = self.rate
        if rate is not None:
            parts.append(f"{rate:.1f} rows/s" if rate >= 1 else f"{1 / rate:.0f} s/row")
        if self.eta is not None and not self.finished:
            parts.append(f"ETA {self.eta:.0f} s")
        if self.errors:
            parts.append(f"{self.errors} error{'s' if self.errors != 1 else ''}")
        if self.retries:
            parts.append(f"{self.retries} retr{'ies' if self.retries != 1 else 'y'}")
        if self.cached:
            parts.append(f"{self.cached} from the log")
        if self.cancelled:
            parts.append("interrupted")
        elif self.finished:
            parts.append(f"done in {self.elapsed:.1f} s")
        return " · ".join(parts)


#: Called with each ``BatchProgress`` (from the batch's threads; keep it quick).
ProgressCallback = Callable[[BatchProgress], None]


class BatchResult(Sequence["ModelResponse"]):
    """The answers of a batch, one per input row, in input order.

    ``texts``, ``parsed`` (with ``schema=``) and ``errors`` are the columns people want most;
    ``to_pandas()`` gives all of them as a DataFrame indexed like the input.
    """

    def __init__(
        self,
        responses: list[ModelResponse],
        *,
        backend: str,
        model: str,
        index: Any = None,
        schema: OutputSchema | None = None,
        cancelled: bool = False,
        elapsed: float = 0.0,
        retries: int = 0,
        cached: int = 0,
        resumable: bool = False,
    ) -> None:
        self._responses = responses
        self.backend = backend
        self.model = model
        #: The input Series' or DataFrame's index (None for a list): ``to_pandas()`` uses it.
        self.input_index = index
        self.schema = schema
        #: True when Cancel or an interrupt stopped the batch before every row was answered.
        self.cancelled = cancelled
        self.elapsed = elapsed
        #: Requests sent again after a retryable failure (429, 5xx, a dropped connection).
        self.retries = retries
        #: Rows answered from the answer log instead of the backend (``resume=True``).
        self.cached = cached
        #: The answers went into the answer log, so a rerun answers finished rows from it.
        self.resumable = resumable

    @overload
    def __getitem__(self, item: int) -> ModelResponse: ...
    @overload
    def __getitem__(self, item: slice) -> list[ModelResponse]: ...
    def __getitem__(self, item: int | slice) -> ModelResponse | list[ModelResponse]:
        return self._responses[item]

    def __len__(self) -> int:
        return len(self._responses)

    def __iter__(self) -> Iterator[ModelResponse]:
        return iter(self._responses)

    # --- columns ------------------------------------------------------------------------------
    @property
    def texts(self) -> list[str]:
        """Each row's answer text (a failed row's partial text, often empty)."""
        return [r.text for r in self._responses]

    @property
    def parsed(self) -> list[Any]:
        """With ``schema=``: each row's validated object (None where the row failed)."""
        return [r.parsed for r in self._responses]

    @property
    def errors(self) -> dict[int, str]:
        """Row position -> why it failed, for the rows that failed (not the cancelled ones)."""
        return {
            i: r.error or "failed"
            for i, r in enumerate(self._responses)
            if r.finish_reason == "error"
        }

    @property
    def counts(self) -> dict[str, int]:
        """How many rows were answered (``ok``), failed (``error``) and left (``cancelled``)."""
        counts = {"ok": 0, "error": 0, "cancelled": 0}
        for response in self._responses:
            reason = response.finish_reason
            key = reason if reason in ("error", "cancelled") else "ok"
            counts[key] += 1
        return counts

    @property
    def ok(self) -> bool:
        """Every row answered."""
        return self.counts["ok"] == len(self)

    def __repr__(self) -> str:
        counts = self.counts
        parts = [f"{counts['ok']} ok"]
        if counts["error"]:
            parts.append(f"{counts['error']} failed")
        if counts["cancelled"]:
            parts.append(f"{counts['cancelled']} not run")
        if self.cached:
            parts.append(f"{self.cached} from the log")
        flag = ", interrupted" if self.cancelled else ""
        where = redact(f"{self.backend}:{self.model}")
        return (
            f"<BatchResult {len(self)} rows ({', '.join(parts)}{flag}) · {where:.80} · "
            f"{self.elapsed:.1f} s>"
        )

    # --- pandas -------------------------------------------------------------------------------
    def to_pandas(self) -> Any:
        """A DataFrame, one row per input row, indexed like the input Series or DataFrame.

        Columns: ``text``, ``finish_reason``, ``error``, ``prompt_tokens``,
        ``completion_tokens``, ``duration``; with a schema, first the object's fields as
        typed columns (integers ``Int64``, numbers ``Float64``, booleans ``boolean``,
        strings ``string``, enums ``category``: nullable, as failed rows have none). A field
        named like one of the other columns gets the prefix ``answer_``.
        """
        from importlib import import_module

        try:
            pd: Any = import_module("pandas")
        except ImportError:
            raise ImportError("to_pandas() needs pandas: pip install pandas") from None
        from ._batch_columns import field_columns

        rows = self._responses
        data: dict[str, Any] = {}
        meta = ("text", "finish_reason", "error", "prompt_tokens", "completion_tokens", "duration")
        if self.schema is not None:
            for name, (values, dtype) in field_columns(self.schema, [r.parsed for r in rows]):
                column = f"answer_{name}" if name in meta else name
                data[column] = pd.Series(values, dtype=dtype)
        data["text"] = pd.Series([r.text for r in rows], dtype="string")
        data["finish_reason"] = pd.Series([r.finish_reason for r in rows], dtype="string")
        data["error"] = pd.Series([r.error for r in rows], dtype="string")
        data["prompt_tokens"] = pd.Series([r.prompt_tokens for r in rows], dtype="Int64")
        data["completion_tokens"] = pd.Series([r.completion_tokens for r in rows], dtype="Int64")
        data["duration"] = pd.Series([r.duration for r in rows], dtype="Float64")
        frame = pd.DataFrame(data)
        if self.input_index is not None:
            frame.index = self.input_index
        return frame
