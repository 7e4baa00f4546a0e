"""Stop strings for engines that cannot stop on them: the base cuts the text itself."""

from __future__ import annotations


class StopMatcher:
    """Holds back text that may begin a stop string, for engines that cannot stop on strings."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = stops
        self.pending = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Return the text that is safe to show now; sets ``stopped`` when a stop string appears."""
        if not self.stops:
            return piece
        self.pending += piece
        cuts = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if cuts:
            self.stopped = True
            out, self.pending = self.pending[: min(cuts)], ""
            return out
        hold = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(self.pending)), hold, -1):
                if self.pending.endswith(stop[:k]):
                    hold = k
                    break
        split = len(self.pending) - hold
        out, self.pending = self.pending[:split], self.pending[split:]
        return out

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out
