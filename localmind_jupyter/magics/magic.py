"""``%%localmind`` (the cell is the prompt, the answer streams into the output) and
``%localmind`` line commands.

Front end only: everything about models lives in the backends and the core; this
module parses options, fills the prompt, and shows what comes back.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Bool, Enum, Float, Int, Unicode

from .. import __version__
from ..backends.base import ModelResponse
from ..errors import GenerationError, LocalMindError, ModelNotFound
from ..session import KernelSession, get_session
from .interpolation import describe_missing, interpolate
from .render import FORMATS, NotebookView, TerminalView, finalize
from .tables import Table

LINE_COMMANDS = {
    "help": "this help",
    "backends": "each backend: type, status and why, URL",
    "models": "models [BACKEND] [--installed] [--tag T] [--search S]: catalog and installed",
    "pull": "pull MODEL [-b BACKEND]: download with progress (Ctrl-C / interrupt cancels)",
    "use": "use MODEL: the default model of this kernel",
    "manager": "the model manager: backends, catalog, downloads (widgets)",
    "alias": "alias NAME TARGET: a short name for a model",
    "unalias": "unalias NAME",
    "reset": "forget the chat history",
    "config": "the effective configuration (secrets masked)",
    "reload": "re-read config.yaml and rebuild the backends",
    "stats": "statistics of the last answer",
    "version": "LocalMind's version",
}


def _stats_line(response: ModelResponse, stopped: bool) -> str:
    parts = [f"{response.backend}:{response.model}"]
    if response.completion_tokens is not None:
        parts.append(f"{response.completion_tokens} tokens")
    if response.time_to_first_token is not None:
        parts.append(f"first token {response.time_to_first_token:.2f} s")
    if response.tokens_per_second:
        parts.append(f"{response.tokens_per_second:.1f} tokens/s")
    if response.duration is not None:
        parts.append(f"{response.duration:.1f} s")
    if stopped:
        parts.append("stopped")
    return " · ".join(parts)


@magics_class
class LocalMind(Magics):
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

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)

    @property
    def session(self) -> KernelSession:
        return get_session()

    def post_run_cell(self, result: Any) -> None:
        """Remember each cell's error, for ``{Err[n]}``."""
        self.session.record_error(result.execution_count, result.error_in_exec)

    # --- the magic ----------------------------------------------------------------------------
    @magic_arguments()
    @argument("model_spec", nargs="?", metavar="MODEL", help="backend:model, a model or an alias")
    @argument("-b", "--backend", help="backend to use (with a model name)")
    @argument("-m", "--model", help="model (same as MODEL)")
    @argument("-f", "--format", choices=FORMATS, help="output format (default: markdown)")
    @argument("-s", "--system", help="system prompt")
    @argument("-t", "--temperature", type=float, help="0-2; 0 means greedy")
    @argument("--max-tokens", type=int, help="longest answer in tokens")
    @argument("--top-p", type=float, help="nucleus sampling, (0, 1]")
    @argument("--seed", type=int, help="seed for reproducible sampling")
    @argument("--stop", action="append", help="stop sequence (repeatable)")
    @argument("-o", "--output", metavar="VAR", help="store the answer (parsed for json) in VAR")
    @argument("--no-stream", action="store_true", help="show the answer only when complete")
    @argument("--no-history", action="store_true", help="send this prompt alone")
    @argument("--no-interpolate", action="store_true", help="leave {name} as written")
    @argument("--stats", dest="stats", action="store_true", default=None, help="show the footer")
    @argument("--no-stats", dest="stats", action="store_false", help="hide the footer")
    @line_cell_magic
    def localmind(self, line: str, cell: str | None = None) -> None:
        """Ask a language model; the cell body is the prompt and the answer streams in.

        %%localmind [MODEL] [options]   -- prompt in the cell body
        %localmind COMMAND [args]       -- help, backends, models, pull, use, alias,
                                           unalias, reset, config, reload, stats, version

        {name}, {In[3]}, {Out[3]} and {Err[3]} in the prompt are filled from the
        notebook ({{ and }} give literal braces). Consecutive cells to the same
        model form a conversation; `%localmind reset` forgets it.
        """
        if cell is None:
            self._line_command(line)
            return
        self._ask(line, cell)

    def _in_kernel(self) -> bool:
        return getattr(self.shell, "kernel", None) is not None

    def _say(self, text: str, *, error: bool = False) -> None:
        """A short message: no traceback, ever, for an expected failure."""
        if self._in_kernel():
            NotebookView.note_only(text, error=error)
        else:
            print(("⚠ " if error else "") + text, file=sys.stderr if error else sys.stdout)

    def _ask(self, line: str, cell: str) -> None:
        try:
            # shlex, not IPython's arg_split, so quoted values lose their quotes.
            args = self.localmind.parser.parse_args(shlex.split(line))
        except ValueError as exc:
            self._say(f"cannot parse the options: {exc}", error=True)
            return
        except UsageError as exc:
            self._say(f"{exc} — see %%localmind? for the options", error=True)
            return
        fmt = args.format or self.default_format
        spec = args.model or args.model_spec
        if args.backend:
            if not spec:
                self._say(f"name a model to use with -b {args.backend} (-m MODEL)", error=True)
                return
            spec = f"{args.backend}:{spec}"

        prompt = cell.strip("\n")
        if not args.no_interpolate:
            filled = interpolate(prompt, self.shell.user_ns, errors=self.session.cell_errors)
            prompt = filled.text
            missing = describe_missing(filled.missing)
            if missing:
                self._say(missing)
        if not prompt.strip():
            self._say("the cell is empty: write the prompt below %%localmind", error=True)
            return

        options: dict[str, Any] = {
            key: value
            for key, value in {
                "system": args.system,
                "temperature": args.temperature,
                "max_tokens": args.max_tokens,
                "top_p": args.top_p,
                "seed": args.seed,
                "stop": args.stop,
            }.items()
            if value is not None
        }
        try:
            backend, model = self.session.resolve(spec, self.default_model)
        except LocalMindError as exc:
            self._say(str(exc), error=True)
            return
        conversation = None
        if not args.no_history:
            conversation = self.session.history_for(backend.name, model, self.max_history)
            if conversation.messages:
                options["messages"] = list(conversation.messages)

        view: NotebookView | TerminalView
        if self._in_kernel():
            view = NotebookView(fmt, self.max_update_rate, waiting=f"{backend.name}:{model} …")
        else:
            view = TerminalView(fmt)
        stopped, failure, response = False, None, None
        text = ""
        stream = None
        try:
            if args.no_stream:
                response = backend.generate(prompt, model, **options)
                text = response.text
            else:
                stream = backend.generate_stream(prompt, model, **options)
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
        if stream is not None:
            text = stream.text
            response = stream.response
        if response is None:
            response = ModelResponse(text=text, model=model, backend=backend.name)

        final = finalize(text, fmt)
        metadata = {
            "backend": backend.name,
            "model": model,
            "format": fmt,
            "parameters": {k: v for k, v in options.items() if k != "messages"},
            "history_turns": len(options.get("messages", ())) // 2,
            "stats": {k: v for k, v in response.to_dict().items() if k != "text"},
            "stopped": stopped,
            "error": str(failure) if failure else None,
        }
        view.finish(text, final, metadata)
        if final.note:
            self._say(final.note)
        if stopped:
            self._say("stopped — the partial answer is kept above")
        if failure is not None:
            self._say(str(failure), error=True)
        if final.next_input is not None and not stopped and failure is None:
            self.shell.set_next_input(final.next_input, replace=False)
        if args.output:
            self.shell.user_ns[args.output] = final.value
        self.shell.user_ns["_localmind"] = response
        self.session.last_response = response
        if conversation is not None and failure is None and not stopped and text:
            conversation.add(prompt, text)
        show_stats = self.show_stats if args.stats is None else args.stats
        if show_stats:
            view.footer(_stats_line(response, stopped))

    # --- line commands ------------------------------------------------------------------------
    def _line_command(self, line: str) -> None:
        try:
            words = shlex.split(line)
        except ValueError as exc:
            self._say(f"cannot parse the command: {exc}", error=True)
            return
        command, rest = (words[0], words[1:]) if words else ("help", [])
        handler = getattr(self, f"_cmd_{command}", None)
        if handler is None:
            known = ", ".join(LINE_COMMANDS)
            self._say(f"unknown command '{command}'; commands: {known}", error=True)
            return
        try:
            handler(rest)
        except LocalMindError as exc:
            self._say(str(exc), error=True)
        except _CommandUsage as exc:
            self._say(str(exc), error=True)

    def _show(self, obj: Any) -> None:
        if self._in_kernel():
            from IPython.display import display

            display(obj)
        else:
            print(repr(obj))

    def _cmd_help(self, _args: list[str]) -> None:
        rows = [[f"%localmind {name}", text] for name, text in LINE_COMMANDS.items()]
        self._show(
            Table(
                ["command", "what it does"], rows, "%%localmind [MODEL] [options]: see %%localmind?"
            )
        )

    def _cmd_version(self, _args: list[str]) -> None:
        print(f"localmind-jupyter {__version__}")

    def _cmd_backends(self, _args: list[str]) -> None:
        statuses = self.session.loader.probe()
        rows = []
        for status in statuses.values():
            info = status.backend.get_backend_info() if status.backend else {}
            state = (
                "available"
                if status.available
                else ("disabled" if not status.enabled else "unavailable")
            )
            rows.append(
                [status.name, status.type, state, status.reason or "", info.get("base_url", "")]
            )
        self._show(Table(["backend", "type", "status", "reason", "url"], rows))

    def _cmd_models(self, args: list[str]) -> None:
        parser = _parser("models")
        parser.add_argument("backend", nargs="?")
        parser.add_argument("--installed", action="store_true")
        parser.add_argument("--tag")
        parser.add_argument("--search")
        opts = _parse(parser, args)
        available = self.session.registry.available()
        names = list(available["backends"])
        if opts.backend and opts.backend not in names:
            raise _CommandUsage(f"no backend named '{opts.backend}'; backends: {', '.join(names)}")
        rows = []
        for name, entry in available["backends"].items():
            if opts.backend and name != opts.backend:
                continue
            for m in entry["models"]:
                if opts.installed and not m["installed"]:
                    continue
                if opts.tag and opts.tag.lower() not in m["tags"]:
                    continue
                haystack = f"{m['name']} {m['description']}".lower()
                if opts.search and opts.search.lower() not in haystack:
                    continue
                rows.append(
                    [
                        name,
                        m["name"],
                        m["size_human"],
                        ", ".join(m["tags"]),
                        "✓" if m["installed"] else "",
                        m["description"],
                    ]
                )
        self._show(Table(["backend", "model", "size", "tags", "installed", "description"], rows))

    def _cmd_use(self, args: list[str]) -> None:
        if len(args) != 1:
            raise _CommandUsage("usage: %localmind use MODEL (backend:model, a model or an alias)")
        backend, model = self.session.resolve(args[0], self.default_model)
        self.session.chosen_model = f"{backend.name}:{model}"
        print(f"%%localmind now uses {self.session.chosen_model} in this kernel")

    def _cmd_manager(self, _args: list[str]) -> None:
        if not self._in_kernel():
            self._say("the model manager is a widget: run %localmind manager in a notebook")
            return
        from ..widgets import ModelManager

        self._show(ModelManager())

    def _cmd_alias(self, args: list[str]) -> None:
        if len(args) != 2:
            raise _CommandUsage("usage: %localmind alias NAME TARGET")
        name, target = args
        if ":" in name:
            raise _CommandUsage(
                "an alias name cannot contain ':' (it would look like backend:model)"
            )
        self.session.aliases[name] = target
        print(f"alias {name} -> {target}")

    def _cmd_unalias(self, args: list[str]) -> None:
        if len(args) != 1 or args[0] not in self.session.aliases:
            known = ", ".join(self.session.aliases) or "none"
            raise _CommandUsage(f"usage: %localmind unalias NAME (aliases: {known})")
        del self.session.aliases[args[0]]
        print(f"alias {args[0]} removed")

    def _cmd_reset(self, _args: list[str]) -> None:
        self.session.reset()
        print("chat history cleared")

    def _cmd_reload(self, _args: list[str]) -> None:
        self.session.reload()
        self.session.loader  # noqa: B018 - build now so config errors show here
        print("configuration reloaded")

    def _cmd_config(self, _args: list[str]) -> None:
        import yaml

        config = self.session.loader.config
        data = config.to_display_dict()
        data["source"] = str(config.source) if config.source else "(built-in defaults)"
        data["kernel"] = {
            "default_model": self.default_model,
            "max_history": self.max_history,
            "default_format": self.default_format,
            "show_stats": self.show_stats,
            **self.session.describe(),
        }
        print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())

    def _cmd_stats(self, _args: list[str]) -> None:
        response = self.session.last_response
        if response is None:
            print("no answer yet in this kernel")
            return
        rows = [[k, v] for k, v in response.to_dict().items() if k != "text"]
        self._show(Table(["statistic", "value"], rows))

    def _cmd_pull(self, args: list[str]) -> None:
        parser = _parser("pull")
        parser.add_argument("model")
        parser.add_argument("-b", "--backend")
        opts = _parse(parser, args)
        backend_name, model = _split_pull_target(
            opts.model, opts.backend, self.session.loader.statuses
        )
        download = self.session.downloads.start(backend_name, model)
        progress = _progress_view(self._in_kernel(), f"{backend_name}:{model}")
        download.subscribe(progress.update)
        try:
            while not download.wait(0.1).finished:
                pass
        except KeyboardInterrupt:
            download.cancel()
            download.wait(10)
        finally:
            download.unsubscribe(progress.update)
        final = download.snapshot()
        progress.update(final)
        if final.state == "failed":
            self._say(final.error or "the download failed", error=True)
        elif final.state == "cancelled":
            self._say(f"download of {backend_name}:{model} cancelled")
        else:
            print(f"{backend_name}:{model} is ready — %%localmind {backend_name}:{model}")


class _CommandUsage(Exception):
    """A line command was called wrongly; shown as one line, not a traceback."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would call sys.exit()
        raise _CommandUsage(f"{self.format_usage().strip()} — {message}")


def _parser(command: str) -> _Parser:
    return _Parser(prog=f"%localmind {command}", add_help=False)


def _parse(parser: _Parser, args: list[str]) -> argparse.Namespace:
    return parser.parse_args(args)


def _split_pull_target(spec: str, backend: str | None, backends: dict[str, Any]) -> tuple[str, str]:
    """``ollama:llama3.2:1b``, ``-b NAME MODEL``, a Hub id (Transformers) or an Ollama name."""
    if backend:
        return backend, spec
    name, sep, model = spec.partition(":")
    if sep and name in backends:
        return name, model
    if "/" in spec and "transformers" in backends:
        return "transformers", spec
    return "ollama", spec


def _progress_line(label: str, status: Any) -> str:
    from ..core.model_registry import human_size

    parts = [f"{label}: {status.status}"]
    if status.total:
        parts.append(f"{human_size(status.completed)} / {human_size(status.total)}")
        parts.append(f"{100 * (status.fraction or 0):.0f} %")
    if status.speed:
        parts.append(f"{human_size(int(status.speed))}/s")
    if status.eta is not None and status.state == "running":
        parts.append(f"ETA {status.eta:.0f} s")
    return " · ".join(parts)


class _TextProgress:
    def __init__(self, label: str) -> None:
        self.label = label
        self._last = 0.0

    def update(self, status: Any) -> None:
        now = time.monotonic()
        if not status.finished and now - self._last < 0.2:
            return
        self._last = now
        end = "\n" if status.finished else ""
        sys.stdout.write("\r" + _progress_line(self.label, status).ljust(79) + end)
        sys.stdout.flush()


class _WidgetProgress:
    def __init__(self, label: str) -> None:
        import ipywidgets as widgets
        from IPython.display import display

        self.label = label
        self.bar = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, bar_style="info")
        self.text = widgets.Label(value=f"{label}: starting")
        display(widgets.VBox([self.bar, self.text]))

    def update(self, status: Any) -> None:
        self.bar.value = status.fraction or 0.0
        self.text.value = _progress_line(self.label, status)
        if status.state == "done":
            self.bar.bar_style = "success"
        elif status.state in {"failed", "cancelled"}:
            self.bar.bar_style = "danger" if status.state == "failed" else "warning"


def _progress_view(in_kernel: bool, label: str) -> _TextProgress | _WidgetProgress:
    return _WidgetProgress(label) if in_kernel else _TextProgress(label)
