"""``python -m localmind_jupyter "question"``: stream an answer in a terminal.

With no model given it uses the configured default, else the embedded SmolLM2
model, so a fresh install answers with no server and no key.
"""

from __future__ import annotations

import argparse
import sys

from .errors import GenerationError, LocalMindError
from .safe_display import terminal_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localmind_jupyter", description=__doc__)
    parser.add_argument("prompt", help="the question to ask")
    parser.add_argument("-m", "--model", help="backend:model (default: the configured default)")
    parser.add_argument("-s", "--system", help="system prompt")
    parser.add_argument("-t", "--temperature", type=float, help="0 = greedy (the default)")
    parser.add_argument("--max-tokens", type=int, default=256)
    thinking = parser.add_mutually_exclusive_group()
    thinking.add_argument(
        "--think", nargs="?", const=True, choices=("low", "medium", "high"), help="think first"
    )
    thinking.add_argument(
        "--no-think", dest="think", action="store_false", default=None, help="do not think"
    )
    args = parser.parse_args(argv)

    from .core.model_loader import ModelLoader

    trace = _TraceToStderr()
    try:
        backend, model = ModelLoader().resolve(args.model)
        print(f"[{backend.name}:{model}]", file=sys.stderr, flush=True)
        stream = backend.generate_stream(
            args.prompt,
            model,
            system=args.system,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            **({} if args.think is None else {"think": args.think}),
        )
        stream.on_thinking(trace.write)
        for piece in stream:
            trace.end()
            print(terminal_text(piece), end="", flush=True)
        trace.end()
    except KeyboardInterrupt:
        trace.end()
        print("\n[stopped]", file=sys.stderr)
        return 130
    except GenerationError as exc:
        print(f"\n[error] {exc}", file=sys.stderr)
        return 1
    except LocalMindError as exc:
        print(f"[error] {exc}", file=sys.stderr)
        return 1
    print()
    response = stream.response
    if response is not None and response.completion_tokens:
        ttft = response.time_to_first_token or 0.0
        tps = response.tokens_per_second or 0.0
        about = "~" if response.tokens_approximate else ""
        print(
            f"[{about}{response.completion_tokens} tokens, first after {ttft:.2f} s, "
            f"{about}{tps:.1f} tokens/s]",
            file=sys.stderr,
        )
    return 0


class _TraceToStderr:
    """The reasoning trace, apart from the answer: on stderr, between ``[thinking]`` lines."""

    def __init__(self) -> None:
        self.open = False

    def write(self, piece: str) -> None:
        if not self.open:
            self.open = True
            print("[thinking]", file=sys.stderr)
        print(terminal_text(piece), end="", file=sys.stderr, flush=True)

    def end(self) -> None:
        if self.open:
            self.open = False
            print("\n[/thinking]", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
