"""``%localmind`` line commands: help, backends, models, pull, use, alias, config, …

A mixin of the ``LocalMind`` magics: each ``_cmd_NAME`` handles ``%localmind NAME``.
Like the cell magic it only asks the session, the registry and the download manager.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import TYPE_CHECKING, NoReturn, cast

from .. import __version__
from ..errors import LocalMindError
from ..secrets import redact
from ..session import KernelSession
from .tables import Table
from .thinking import stats_of

if TYPE_CHECKING:
    from ..core.downloads import DownloadStatus
    from ..core.model_loader import ModelLoader
    from .magic import LocalMind

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
    "log": "log [-n N] [--search TEXT] [--model M]: recent answers from the answer log",
    "explain": "explain [N] [-m MODEL]: the model explains the last failed cell's error (or N's)",
    "replay": "replay [record|play|off] [PATH]: record answers once, play them with no server",
    "version": "LocalMind's version",
}


class LineCommands:
    """What ``%localmind COMMAND`` does; ``LocalMind`` supplies the shell and the session."""

    default_model: str | None
    max_history: int
    default_format: str
    show_stats: bool

    @property
    def session(self) -> KernelSession:
        raise NotImplementedError

    def _in_kernel(self) -> bool:
        raise NotImplementedError

    def _say(self, text: str, *, error: bool = False) -> None:
        raise NotImplementedError

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

    def _show(self, obj: object) -> None:
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
            url = status.backend.get_backend_info().get("base_url", "") if status.backend else ""
            state = (
                "available"
                if status.available
                else ("disabled" if not status.enabled else "unavailable")
            )
            rows.append([status.name, status.type, state, status.reason or "", url])
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
        print(redact(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip()))

    def _cmd_stats(self, _args: list[str]) -> None:
        response = self.session.last_response
        if response is None:
            print("no answer yet in this kernel")
            return
        rows = [[k, v] for k, v in stats_of(response).items()]
        self._show(Table(["statistic", "value"], rows))

    def _cmd_log(self, args: list[str]) -> None:
        parser = _parser("log")
        parser.add_argument("-n", dest="limit", metavar="N", type=_count, default=20)
        parser.add_argument("--search", metavar="TEXT")
        parser.add_argument("--model", metavar="M")
        opts = _parse(parser, args)
        answer_log = self.session.loader.answer_log
        if answer_log is None:
            self._say("the answer log is off (log: false in config.yaml): nothing is recorded")
            return
        from .log_table import log_table

        entries = answer_log.entries(opts.limit, search=opts.search, model=opts.model)
        self._show(log_table(entries, f"answer log {answer_log.path}, newest first"))

    def _cmd_explain(self, args: list[str]) -> None:
        from .explain import run_explain  # the traceback formatting: on first use only

        run_explain(cast("LocalMind", self), args)

    def _cmd_replay(self, args: list[str]) -> None:
        from .replay_cmd import run_replay

        run_replay(cast("LocalMind", self), args)

    def _cmd_pull(self, args: list[str]) -> None:
        parser = _parser("pull")
        parser.add_argument("model")
        parser.add_argument("-b", "--backend")
        opts = _parse(parser, args)
        backend_name, model = _split_pull_target(opts.model, opts.backend, self.session.loader)
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
    def error(self, message: str) -> NoReturn:  # argparse would call sys.exit()
        raise _CommandUsage(f"{self.format_usage().strip()} — {message}")


def _parser(command: str) -> _Parser:
    return _Parser(prog=f"%localmind {command}", add_help=False)


def _parse(parser: _Parser, args: list[str]) -> argparse.Namespace:
    return parser.parse_args(args)


def _count(text: str) -> int:
    """``-n``'s value: a positive whole number (argparse shows the message)."""
    value = int(text) if text.strip().isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a positive whole number (e.g. -n 50), got {text!r}"
        )
    return value


def _split_pull_target(spec: str, backend: str | None, loader: ModelLoader) -> tuple[str, str]:
    """``NAME:MODEL``, ``-b NAME MODEL``, or a bare model for the backend that claims it."""
    if backend:
        return backend, spec
    name, sep, model = spec.partition(":")
    if sep and name in loader.statuses:
        return name, model
    target = loader.download_target(spec)
    if target is None:
        raise _CommandUsage(
            f"no configured backend downloads a model named {spec!r}; write NAME:MODEL with "
            f"NAME one of {', '.join(loader.statuses) or 'none'} (see `%localmind backends`)"
        )
    return target, spec


def _progress_line(label: str, status: DownloadStatus) -> str:
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

    def update(self, status: DownloadStatus) -> None:
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

    def update(self, status: DownloadStatus) -> None:
        self.bar.value = status.fraction or 0.0
        self.text.value = _progress_line(self.label, status)
        if status.state == "done":
            self.bar.bar_style = "success"
        elif status.state in {"failed", "cancelled"}:
            self.bar.bar_style = "danger" if status.state == "failed" else "warning"


def _progress_view(in_kernel: bool, label: str) -> _TextProgress | _WidgetProgress:
    return _WidgetProgress(label) if in_kernel else _TextProgress(label)
