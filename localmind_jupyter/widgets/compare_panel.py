"""``ComparePanel``: the model manager's Compare action, several installed models side by side.

Select two or more installed models, type a prompt, press Compare: the prompt goes to
every model at once (``core.compare.run_compare``) and the panel shows the very view of
``%%localmind A B`` (``compare_view``'s pure HTML builders, which import no IPython), then
the one-row-per-model table. The comparison runs on a background thread like a download,
so the kernel stays free; Stop cancels every stream at its source and keeps the partial
answers. A model that fails shows its error in its own column. Model text is untrusted:
the builders sanitize every column in every state; our own messages are escaped and
redacted.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..magics.compare_view import SUMMARY_HEADERS, Column, apply_event, columns_html, summary_rows
from ..magics.tables import Table
from ..session import KernelSession, get_session
from . import _style as s
from ._background import BackgroundJob
from ._tree import close_tree

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..backends._response import ModelResponse
    from ..backends.contracts import RegistryAnswer
    from ..core.compare import CompareEvent

__all__ = ["ComparePanel"]

#: Redraws of the view while the answers stream, at most this many a second.
_MAX_REDRAWS = 10.0


class ComparePanel(widgets.VBox):
    """Pick installed models, ask them one prompt, read the answers side by side.

    ``set_data`` takes a ``registry.available()`` answer (the model manager passes the
    picker's); ``compare()`` is what the Compare button does, ``stop()`` the Stop button.
    """

    def __init__(self, *, session: KernelSession | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]  # ipywidgets is untyped
        self.session = session if session is not None else get_session()
        self.redact = s.Redactor.from_session(self.session)
        self.answers: list[ModelResponse] = []
        self.columns: list[Column] = []
        self._lock = threading.RLock()
        self._job = BackgroundJob("compare")
        self._cancel = threading.Event()
        self._drawn = 0.0

        self.title = widgets.HTML(
            s.heading("Compare", "the same prompt to several installed models at once")
        )
        self.models = widgets.SelectMultiple(
            options=[],
            rows=5,
            tooltip="Ctrl-click (⌘-click) to select several models",
            layout=widgets.Layout(width="22em", min_width="12em"),
        )
        self.prompt = widgets.Textarea(
            placeholder="A prompt for every selected model",
            layout=widgets.Layout(flex="1 1 20em", min_width="12em", height="7em"),
        )
        self.compare_button = widgets.Button(
            description="Compare",
            icon="columns",
            button_style="primary",
            tooltip="Ask every selected model at once (runs in the background)",
            layout=widgets.Layout(width="auto"),
        )
        self.stop_button = widgets.Button(
            description="Stop",
            icon="stop",
            disabled=True,
            tooltip="Stop every answer; the partial answers stay",
            layout=widgets.Layout(width="auto"),
        )
        self.compare_button.on_click(lambda _b: self.compare())
        self.stop_button.on_click(lambda _b: self.stop())
        self.message = widgets.HTML()
        self.view = widgets.HTML(layout=widgets.Layout(width="100%"))
        # JupyterLab's styles of rendered Markdown (paragraphs, code, the table), as in an output.
        self.view.add_class("jp-RenderedHTMLCommon")
        inputs = widgets.HBox(
            [self.models, self.prompt],
            layout=widgets.Layout(flex_flow="row wrap", width="100%", grid_gap="8px"),
        )
        buttons = widgets.HBox([self.compare_button, self.stop_button, self.message])
        self.children = [self.title, inputs, buttons, self.view]
        self.layout.width = "100%"
        self.add_class("localmind-compare")  # type: ignore[no-untyped-call]  # ipywidgets is untyped

    # --- data -------------------------------------------------------------------------------
    def set_data(self, result: RegistryAnswer) -> None:
        """Offer every installed model as ``backend:model``; a selection still there stays."""
        specs = [
            f"{backend}:{model['name']}"
            for backend, entry in result["backends"].items()
            for model in entry["models"]
            if model.get("installed")
        ]
        with self._lock:
            self.redact = s.Redactor.from_session(self.session)
            kept = tuple(spec for spec in self.models.value if spec in specs)
            self.models.options = specs
            self.models.value = kept

    def add(self, spec: str) -> None:
        """Offer one more installed model (a finished download) until the next refresh."""
        with self._lock:
            if spec not in self.models.options:
                kept = self.models.value
                self.models.options = [*self.models.options, spec]
                self.models.value = kept

    def select(self, specs: Sequence[str]) -> None:
        """Select these models (as the list shows them), as Ctrl-clicks would."""
        self.models.value = tuple(specs)

    # --- actions ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._job.running

    def compare(self, prompt: str | None = None) -> bool:
        """Start comparing the selected models on ``prompt`` (default: the text box).

        Returns at once: True if it started, False (with the reason shown) if the input is
        not enough or a comparison still runs.
        """
        text = self.prompt.value if prompt is None else prompt
        specs = list(self.models.value)
        if len(specs) < 2:
            return self._say("select two or more models to compare", "error")
        if not text.strip():
            return self._say("type a prompt to send to every selected model", "error")
        with self._lock:
            if self._job.running:
                return self._say("a comparison is still running: Stop it first", "warn")
            self._cancel = threading.Event()
            self.answers = []
            self.columns = [Column(*_split(spec)) for spec in specs]
            self._draw(force=True)
            self.compare_button.disabled = True
            self.stop_button.disabled = False
            self.message.value = s.note("comparing…")
            cancel = self._cancel
            return self._job.start(lambda: self._run(text, specs, cancel), self._done)

    def stop(self) -> None:
        """Stop every stream at its source; each column keeps what it had."""
        self._cancel.set()
        if self._job.running:
            self.message.value = s.note("stopping…")

    def wait(self, timeout: float | None = 60) -> bool:
        """Wait for a running comparison (scripts and tests); True once none runs."""
        return self._job.wait(timeout)

    def close(self) -> None:
        self._cancel.set()
        close_tree(self)

    # --- the work, on the background thread -------------------------------------------------
    def _run(self, prompt: str, specs: list[str], cancel: threading.Event) -> list[ModelResponse]:
        from ..core.compare import check_options, resolve_targets, run_compare

        targets = resolve_targets(specs, lambda spec: self.session.resolve(spec, None))
        with self._lock:  # the backend names as resolved (an alias names its backend)
            for column, target in zip(self.columns, targets, strict=True):
                column.backend, column.model = target.backend_name, target.model
        check_options(prompt, targets, {})
        return run_compare(prompt, targets, {}, on_event=self._on_event, cancel=cancel)

    def _on_event(self, event: CompareEvent) -> None:
        with self._lock:
            apply_event(self.columns, event)
            self._draw(force=event.kind in ("done", "error"))

    def _done(self, answers: list[ModelResponse] | None, error: BaseException | None) -> None:
        with self._lock:
            self.compare_button.disabled = False
            self.stop_button.disabled = True
            if error is not None or answers is None:
                self.columns = []
                self._draw(force=True)
                self._say(f"could not compare: {error}", "error")
                return
            self.answers = answers
            self._draw(force=True, table=True)
            failed = sum(1 for a in answers if a.finish_reason == "error")
            stopped = self._cancel.is_set()
            done = "stopped" if stopped else "done"
            self._say(done + (f" · {failed} failed" if failed else ""), "warn" if failed else "ok")

    def _draw(self, *, force: bool = False, table: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < 1 / _MAX_REDRAWS:
            return
        self._drawn = now
        if not self.columns:
            self.view.value = ""
            return
        html = columns_html(self.columns)
        if table:
            table_html = Table(SUMMARY_HEADERS, summary_rows(self.columns))._repr_html_()
            # Left, as under an output (Lab centres a rendered table elsewhere).
            html += table_html.replace("<table>", '<table style="margin:8px 0">', 1)
        self.view.value = self.redact(html)

    def _say(self, text: str, kind: str) -> bool:
        self.message.value = s.note(self.redact(text), kind)  # note() escapes
        return False


def _split(spec: str) -> tuple[str, str]:
    backend, _, model = spec.partition(":")
    return (backend, model) if model else ("", backend)
