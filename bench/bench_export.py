"""Writing a trace to a file, and drawing it in a terminal, stay quick.

- The Trace Event Format export of 1,000,000 events (the JSON that Perfetto
  opens) against its 5 s budget, and against the obvious way of writing it:
  a dict per trace event, then ``json.dumps``.
- The terminal drawing of a 1,000-arrow trace against its 50 ms budget.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import best_of, row, table

from livekit.trace.events import Event, Exit, Message, Participant, Spawn
from livekit.trace.export import write_trace_events
from livekit.trace.text import sequence_text


def make_events(count: int) -> list[Event]:
    """``count`` events among 100 threads: mostly messages, some starts and exits."""
    main = Participant(0, "caller (MainThread)", "caller")
    workers = [Participant(i, f"worker-{i}", "thread") for i in range(1, 101)]
    events: list[Event] = [Spawn(main, w, 0.0) for w in workers]
    t = 1.0
    while len(events) < count - len(workers):
        w = workers[len(events) % 100]
        t += 1e-6
        events.append(Message(main, w, f"'job {len(events) % 1000}'", "send", t + 5e-7, t))
    events += [Exit(w, "normal", t + 1.0) for w in workers]
    return events


def dicts_and_json_dump(events: list[Event], out: io.StringIO) -> None:
    """The obvious writer: one dict per trace event, json.dumps at the end."""
    tracks = {}
    trace = []
    for e in events:
        for who in (getattr(e, "sender", None), getattr(e, "receiver", None)):
            if who is not None and who.key not in tracks:
                tracks[who.key] = who.key + 1
        if isinstance(e, Message):
            sender, receiver = tracks[e.sender.key], tracks[e.receiver.key]
            sent = (e.sent or e.time) * 1e6
            for ph, tid, ts in (
                ("X", sender, sent),
                ("s", sender, sent),
                ("X", receiver, e.time * 1e6),
                ("f", receiver, e.time * 1e6),
            ):
                trace.append(
                    {
                        "ph": ph,
                        "name": e.label,
                        "cat": "message",
                        "ts": ts,
                        "pid": 1,
                        "tid": tid,
                        "id": len(trace),
                    }
                )
        else:
            trace.append({"ph": "i", "name": str(e), "ts": e.time * 1e6, "pid": 1, "tid": 1})
    out.write(json.dumps({"traceEvents": trace}))


def main() -> list[dict[str, Any]]:
    million = make_events(1_000_000)
    export = best_of(lambda: write_trace_events(million, io.StringIO()), repeat=2)
    obvious = best_of(lambda: dicts_and_json_dump(million, io.StringIO()), repeat=2)
    arrows = make_events(1_100)[:1_000]
    drawing = best_of(lambda: sequence_text(arrows), repeat=7, number=5)
    return [
        row(
            "Trace Event Format export of 1,000,000 events",
            export,
            obvious,
            1.0,
            "vs a dict per trace event and json.dumps",
        ),
        row(
            "Trace Event Format export of 1,000,000 events, 5 s budget",
            export,
            5.0,
            1.0,
            f"budget, not measured; {export:.2f} s",
        ),
        row(
            "terminal drawing of a 1,000-arrow trace, 50 ms budget",
            drawing,
            0.050,
            1.0,
            f"budget, not measured; {drawing * 1e3:.2f} ms",
        ),
    ]


if __name__ == "__main__":
    print(table(main())[0])
