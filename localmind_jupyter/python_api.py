"""The Python API of a notebook: ``localmind_jupyter.batch(...)`` and ``compare(...)``.

A front end like the magic: it resolves the model through the kernel's session (the model
chosen with ``%localmind use``, aliases, the config's default), shows progress the way the
place it runs in can (a widget in a kernel, a text line in a terminal), and leaves the work
to the core's batch runner.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backends._response import ModelResponse
    from .core._batch_result import BatchResult, ProgressCallback
    from .core.retry import RetryPolicy

__all__ = ["batch", "compare"]


def compare(prompt: str, models: Any, **options: Any) -> list[ModelResponse]:
    """Ask several models the same prompt at once; one ``ModelResponse`` per model, in order.

    ``models``: a list of ``backend:model`` specs (aliases too), each named once.
    ``options``: every option of ``generate`` (``system``, ``temperature``, ``seed``,
    ``schema``, ``think``...), the same for every model. The requests run at the same time,
    one thread per model. A model that fails (unknown, server down, an error mid-answer)
    gives an answer with ``finish_reason == "error"`` and ``error`` set, with any partial
    text; the others are unaffected. An interrupt stops every stream and returns the partial
    answers, ``"cancelled"``. Every answer goes into the answer log (source ``compare``).

    Bad input raises ``OptionError`` before any request: an empty or duplicated list, a
    model that is not a string, an empty prompt, an unknown or bad option.
    """
    from .core.compare import check_options, check_specs, resolve_targets, run_compare
    from .session import get_session

    specs = check_specs(models)
    session = get_session()
    targets = resolve_targets(specs, lambda spec: session.resolve(spec, None))
    check_options(prompt, targets, options)
    return run_compare(prompt, targets, dict(options))


def batch(
    prompts: Any,
    model: str | None = None,
    *,
    template: str | None = None,
    concurrency: int | None = None,
    resume: bool = True,
    progress: bool | ProgressCallback = True,
    retry: RetryPolicy | int | None = None,
    **options: Any,
) -> BatchResult:
    """Answer many prompts with one model; one ``ModelResponse`` per prompt, in order.

    ``prompts``: an iterable of strings, a pandas Series of strings, or a DataFrame with
    ``template=`` (``"Label this review: {review}"``: ``{column}`` placeholders filled from
    each row, as the magic fills ``{name}``). ``model``: ``backend:model``, an alias, or
    None for the kernel's default. ``concurrency``: requests sent at once (default: the
    config's ``backends.NAME.concurrency``, else the backend type's: Ollama 4,
    OpenAI-compatible 8, Anthropic 4, in-process engines 1). ``options``: every option of
    ``generate`` (``system``, ``temperature``, ``max_tokens``, ``schema``...), the same for
    every row.

    A row that fails (after retries) is an answer with ``finish_reason == "error"`` and
    ``error`` set; the batch goes on. Cancel or an interrupt (Ctrl-C, the kernel's stop
    button) keeps every finished row and returns the partial result, with unfinished rows
    ``"cancelled"`` and ``result.cancelled`` True. ``progress``: False shows nothing, a
    callable gets each ``BatchProgress`` instead of the bar.

    ``retry``: a row whose request fails with a connection error, 429 or a 5xx (before
    any text arrived) is sent again with exponential backoff and jitter, honouring
    ``Retry-After``; an int is the most attempts in all (default 4, 1: never retry), a
    ``core.retry.RetryPolicy`` sets the delays too.

    ``resume``: rows whose identical request already has a successful answer in the
    answer log are answered from it, so rerunning an interrupted batch sends only the
    rest. With logging off (``log: false`` in config.yaml) there is no log and resume
    does nothing.

    Bad input raises ``OptionError`` before any request: an empty input, a template
    naming a missing column, a prompt that is not a string, ``concurrency < 1``, an
    unknown or bad option.
    """
    from .core.batch import check_concurrency, default_concurrency, prepare_inputs, run_batch
    from .core.retry import RetryPolicy
    from .errors import OptionError
    from .session import get_session

    wanted = check_concurrency(concurrency)
    if not isinstance(resume, bool):
        raise OptionError(f"resume must be True or False, got {resume!r:.40}")
    if not (isinstance(progress, bool) or callable(progress)):
        raise OptionError(
            f"progress must be True, False or a function of BatchProgress, got {progress!r:.40}"
        )
    if model is not None and not isinstance(model, str):
        raise OptionError(f"model must be a 'backend:model' string or None, got {model!r:.40}")
    policy = retry if isinstance(retry, RetryPolicy) else RetryPolicy()
    if retry is not None and not isinstance(retry, RetryPolicy):
        policy = RetryPolicy(max_attempts=retry)
    inputs = prepare_inputs(prompts, template)
    session = get_session()
    backend, model_name = session.resolve(model, None)
    if wanted is None:
        wanted = default_concurrency(backend, session.loader.config)
    sample = inputs.sample_row()  # bad options (a model that cannot see): no bar yet
    backend.build_request(inputs.prompts[sample], model_name, **inputs.options_for(sample, options))
    cancel = threading.Event()
    display = _display(progress, len(inputs.prompts), cancel, f"{backend.name}:{model_name}")
    on_progress = display.update if display is not None else None
    if callable(progress) and not isinstance(progress, bool):
        on_progress = progress
    result = run_batch(
        backend,
        model_name,
        inputs,
        dict(options),
        concurrency=wanted,
        on_progress=on_progress,
        cancel=cancel,
        log=session.loader.answer_log,
        resume=resume,
        retry=policy,
    )
    if display is not None:
        display.close(result)
    elif result.cancelled:
        _note(result)
    return result


def _display(progress: Any, total: int, cancel: threading.Event, label: str) -> Any:
    """The bar for where this runs: a widget in a kernel with ipywidgets, else text on stderr."""
    if progress is not True:
        return None
    if _in_kernel():
        try:
            from .widgets.batch_progress import BatchProgressBar
        except ImportError:  # no ipywidgets: the text line still works in a notebook
            pass
        else:
            return BatchProgressBar(total, label, cancel=cancel)
    from ._batch_text import TextBar

    return TextBar(total, label)


def _in_kernel() -> bool:
    """A Jupyter kernel runs this (not a terminal IPython or a script); IPython not imported."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    return getattr(shell, "kernel", None) is not None


def _note(result: BatchResult) -> None:
    from ._batch_text import interrupted_note

    print(interrupted_note(result), file=sys.stderr)
