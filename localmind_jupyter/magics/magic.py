"""``%%localmind`` (the cell is the prompt, the answer streams into the output) and
``%localmind`` dispatching to the line commands (commands.py).

Front end only: everything about models lives in the backends and the core; this
module parses options, fills the prompt, and shows what comes back.
"""

from __future__ import annotations

import shlex
import sys
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Bool, Enum, Float, Int, Unicode

from ..backends.base import ModelResponse
from ..core.answer_log import answer_source
from ..errors import GenerationError, LocalMindError, ModelNotFound, OptionError
from ..secrets import redact
from ..session import KernelSession, get_session
from .commands import LineCommands
from .image_view import images_metadata, show_images
from .output_name import output_name_problem
from .prompt_images import cell_prompt
from .render import FORMATS, Final, NotebookView, TerminalView, finalize
from .request_options import THINK_LEVELS, FlagError, sampling_options, structured_options
from .thinking import parsed_bundle, stats_of

if TYPE_CHECKING:
    from IPython.core.interactiveshell import ExecutionResult, InteractiveShell


def _stats_line(response: ModelResponse, stopped: bool) -> str:
    parts = [f"{response.backend}:{response.model}"]
    about = "~" if response.tokens_approximate else ""  # counted pieces, not the server's count
    thought = response.thinking_tokens
    if response.completion_tokens is not None:
        of_which = f" ({thought} thinking)" if thought is not None else ""
        parts.append(f"{about}{response.completion_tokens} tokens{of_which}")
    elif thought is not None:
        parts.append(f"{thought} thinking tokens")
    if response.time_to_first_token is not None:
        parts.append(f"first token {response.time_to_first_token:.2f} s")
    if response.tokens_per_second:
        parts.append(f"{about}{response.tokens_per_second:.1f} tokens/s")
    if response.duration is not None:
        parts.append(f"{response.duration:.1f} s")
    if stopped:
        parts.append("stopped")
    if response.replayed:
        parts.append("replayed")
    return " · ".join(parts)


def _parameters(options: dict[str, Any]) -> dict[str, Any]:
    """The request's options as JSON-ready metadata: a pydantic schema by its name."""
    shown = {k: v for k, v in options.items() if k not in ("messages", "images")}
    schema = shown.get("schema")
    if isinstance(schema, type):
        shown["schema"] = schema.__name__
    return shown


@magics_class
class LocalMind(LineCommands, Magics):
    """Configure with ``%config LocalMind.default_model = "ollama:llama3.2:1b"`` etc."""

    default_model = Unicode(
        None, allow_none=True, help="Model used when a cell names none (backend:model)."
    ).tag(config=True)
    max_history = Int(10, help="Earlier exchanges sent with each prompt.").tag(config=True)
    default_format = Enum(FORMATS, default_value="markdown", help="Output format.").tag(config=True)
    show_stats = Bool(True, help="Show the one-line statistics footer.").tag(config=True)
    max_update_rate = Float(20.0, help="Display updates per second while streaming.").tag(
        config=True
    )

    def __init__(self, shell: InteractiveShell | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)

    @property
    def session(self) -> KernelSession:
        return get_session()

    def post_run_cell(self, result: ExecutionResult) -> None:
        """Remember each cell's error, for ``{Err[n]}`` and ``%localmind explain``."""
        self.session.record_error(result.execution_count, result.error_in_exec)
        if result.error_in_exec is not None or result.error_before_exec is not None:
            from .explain import record_failed_cell

            record_failed_cell(self, result)

    # --- the magic ----------------------------------------------------------------------------
    @magic_arguments()
    @argument(
        "model_spec",
        nargs="*",
        metavar="MODEL",
        help="backend:model, a model or an alias; several: compare them side by side",
    )
    @argument("-b", "--backend", help="backend to use (with a model name)")
    @argument("-m", "--model", action="append", help="model (same as MODEL; repeatable)")
    @argument("-f", "--format", choices=FORMATS, help="output format (default: markdown)")
    @argument("-s", "--system", help="system prompt")
    @argument("-t", "--temperature", type=float, help="0-2; 0 means greedy")
    @argument("--max-tokens", type=int, help="longest answer in tokens")
    @argument("--top-p", type=float, help="nucleus sampling, (0, 1]")
    @argument("--seed", type=int, help="seed for reproducible sampling")
    @argument("--stop", action="append", help="stop sequence (repeatable)")
    @argument(
        "-o", "--output", metavar="VAR", help="store the answer (parsed for json, --schema) in VAR"
    )
    @argument("--schema", metavar="NAME", help="pydantic class or JSON Schema dict to answer in")
    @argument(
        "--think", nargs="?", const=True, choices=THINK_LEVELS, help="think (low|medium|high)"
    )
    @argument("--no-think", action="store_true", help="answer without thinking")
    @argument("--option", action="append", metavar="KEY=VALUE", help="backend option (repeatable)")
    @argument("--no-stream", action="store_true", help="show the answer only when complete")
    @argument("--no-history", action="store_true", help="send this prompt alone")
    @argument("--no-interpolate", action="store_true", help="leave {name} as written")
    @argument(
        "--image",
        action="append",
        metavar="NAME_OR_PATH",
        help="attach an image: a variable, else a file (repeatable)",
    )
    @argument("--over", metavar="DF", help="a DataFrame: the cell is a template run per row")
    @argument("--into", metavar="COLUMN", help="with --over: the column the answers fill")
    @argument("--concurrency", type=int, metavar="N", help="with --over: rows sent at once")
    @argument("--stats", dest="stats", action="store_true", default=None, help="show the footer")
    @argument("--no-stats", dest="stats", action="store_false", help="hide the footer")
    @line_cell_magic
    def localmind(self, line: str, cell: str | None = None) -> None:
        """Ask a language model; the cell body is the prompt and the answer streams in.

        %%localmind [MODEL] [options]   -- prompt in the cell body
        %%localmind MODEL_A MODEL_B [...] [options]
                                        -- the same prompt to each model at once,
                                           the answers side by side
        %%localmind --over DF --into COLUMN [MODEL] [options]
                                        -- the body is a template run for each row of
                                           DF ({column} placeholders); the answers
                                           fill DF[COLUMN]
        %localmind COMMAND [args]       -- help, backends, models, pull, use, alias,
                                           unalias, reset, config, reload, stats, log,
                                           explain, version

        {name}, {In[3]}, {Out[3]} and {Err[3]} in the prompt are filled from the
        notebook ({{ and }} give literal braces); a {name} or {Out[3]} that is an
        image (a matplotlib figure, a PIL image...) is attached for a vision model,
        as is each --image. Consecutive cells to the same model form a
        conversation; `%localmind reset` forgets it.
        """
        if cell is None:
            self._line_command(line)
            return
        with answer_source("magic"):  # how the answer log tells a cell's answers apart
            self._ask(line, cell)

    def _in_kernel(self) -> bool:
        return getattr(self.shell, "kernel", None) is not None

    def _say(self, text: str, *, error: bool = False) -> None:
        """A short message: no traceback, ever, for an expected failure; never a secret."""
        text = redact(text)
        if self._in_kernel():
            NotebookView.note_only(text, error=error)
        else:
            print(("⚠ " if error else "") + text, file=sys.stderr if error else sys.stdout)

    def _ask(self, line: str, cell: str) -> None:
        shell = self.shell
        assert shell is not None  # IPython registers the magic with its shell
        try:
            # shlex, not IPython's arg_split, so quoted values lose their quotes.
            args = self.localmind.parser.parse_args(shlex.split(line))
        except ValueError as exc:
            self._say(f"cannot parse the options: {exc}", error=True)
            return
        except UsageError as exc:
            self._say(f"{exc} — see %%localmind? for the options", error=True)
            return
        if args.output:
            problem = output_name_problem(args.output, getattr(shell, "user_ns_hidden", ()))
            if problem:
                self._say(problem, error=True)
                return
        fmt = args.format or self.default_format
        specs = [*args.model_spec, *(args.model or ())]
        if args.backend:
            if not specs:
                self._say(f"name a model to use with -b {args.backend} (-m MODEL)", error=True)
                return
            specs = [f"{args.backend}:{s}" for s in specs]
        batch = args.over is not None or args.into is not None or args.concurrency is not None
        if len(specs) > 1 and batch:
            self._say(
                "--over runs one model over the rows: name one model, not several", error=True
            )
            return
        if len(specs) > 1:
            from .compare_cell import run_compare_cell

            run_compare_cell(self, args, cell, specs)  # logged as source "compare"
            return
        spec = specs[0] if specs else None
        if batch:
            from .batch_cell import run_batch_cell  # pandas and the runner: on first use only

            run_batch_cell(self, args, cell, spec)
            return

        asked = cell_prompt(self, args, cell)
        if asked is None:
            return
        prompt, images = asked
        options = sampling_options(args)
        if images:
            options["images"] = images
        try:
            backend, model = self.session.resolve(spec, self.default_model)
        except LocalMindError as exc:
            self._say(str(exc), error=True)
            return
        try:
            capabilities = backend.model_capabilities(model)
            options.update(structured_options(args, shell.user_ns, fmt, capabilities))
        except FlagError as exc:
            self._say(str(exc), error=True)
            return
        if args.schema is not None:
            fmt = "json"
        conversation = None
        if not args.no_history:
            conversation = self.session.history_for(backend.name, model, self.max_history)
            if conversation.messages:
                options["messages"] = list(conversation.messages)
        if images:
            try:  # a model that cannot see is refused before the thumbnails are shown
                backend.build_request(prompt, model, **options)
            except OptionError as exc:  # other faults: as any request's, below
                self._say(str(exc), error=True)
                return
            show_images(images, notebook=self._in_kernel())

        remote_images = self.session.loader.config.display.remote_images
        view: NotebookView | TerminalView
        if self._in_kernel():
            view = NotebookView(
                fmt,
                self.max_update_rate,
                waiting=f"{backend.name}:{model} …",
                remote_images=remote_images,
            )
        else:
            view = TerminalView(fmt)
        stopped, failure, response = False, None, None
        text = ""
        stream = None
        try:
            stream = backend.generate_stream(prompt, model, **options)
            if not args.no_stream:
                stream.on_thinking(view.on_thinking)
            if args.no_stream:  # drained unseen, so an interrupt still keeps what arrived
                for _ in stream:
                    pass
            else:
                on_piece = view.on_piece
                for piece in stream:
                    on_piece(piece, stream)
        except KeyboardInterrupt:
            stopped = True
            if stream is not None:
                stream.close()
        except GenerationError as exc:
            failure = exc
            text = exc.partial_text
        except LocalMindError as exc:
            message = str(exc)
            if isinstance(exc, ModelNotFound) and "%localmind pull" not in message:
                message += f" — `%localmind pull {backend.name}:{model}` may fetch it"
            view.fail(message)
            return
        trace = ""
        if stream is not None:
            text = stream.text or text
            response = stream.response
            trace = stream.thinking
            if args.no_stream and trace:
                view.on_thinking(trace)  # unseen while it arrived: shown whole now
        if not text and not trace and (failure is not None or stopped):
            # Nothing arrived: the message alone, no empty answer and no footer around it.
            view.fail(str(failure) if failure is not None else "stopped before any answer arrived")
            return
        if response is None:
            response = ModelResponse(text=text, model=model, backend=backend.name)

        final = finalize(
            text,
            "text" if args.schema and response.parsed is None else fmt,
            remote_images=remote_images,
        )
        if response.parsed is not None:  # validated against --schema: the object, not the text
            final = Final(response.parsed, parsed_bundle(response.parsed))
        metadata = {
            "backend": backend.name,
            "model": model,
            "format": fmt,
            "parameters": _parameters(options),
            "history_turns": len(options.get("messages", ())) // 2,
            "stats": stats_of(response),
            "stopped": stopped,
            "error": str(failure) if failure else None,
        }
        if response.replayed:
            metadata["replayed"] = True
        if images:
            metadata["images"] = images_metadata(images)
        view.finish(text, final, metadata)
        if final.note:
            self._say(final.note)
        if response.warning:
            self._say(response.warning)
        if stopped:
            self._say("stopped — the partial answer is kept above")
        if failure is not None:
            self._say(str(failure), error=True)
        if final.next_input is not None and not stopped and failure is None:
            shell.set_next_input(final.next_input, replace=False)
        if args.output:
            shell.user_ns[args.output] = final.value
        shell.user_ns["_localmind"] = response
        self.session.last_response = response
        if conversation is not None and failure is None and not stopped and text:
            conversation.add(prompt, text, images=images)
        show_stats = self.show_stats if args.stats is None else args.stats
        if show_stats:
            view.footer(_stats_line(response, stopped))
