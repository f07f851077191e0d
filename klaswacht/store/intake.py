"""Event intake: a bounded in-memory queue, an append-only spill file past the bound, and its replay.

`record` runs inside the proxy's hooks, so it never waits and never raises: it appends to a deque,
or past the bound writes one JSON line to `spill/events-*.jsonl` (line-buffered, so a crash of the
process loses nothing that was spilled), or, if even that fails, counts the event as dropped.

Every event gets its id here, before it is queued or spilled: the database ignores an id it already
has, so a batch that is written twice (a replay cut short by a crash, a write into a file that was
replaced meanwhile) is stored once. A spill file is renamed to `*.replaying` before its replay and
the offset reached is kept next to it, so a crash during a replay repeats at most one batch.
Spill files are locked (flock) while a process writes or replays them: several proxy processes can
share one data dir.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import secrets
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from klaswacht.store.model import Event, now_utc

log = logging.getLogger(__name__)

Item = tuple[str, Event]  # (event id, event)
COUNTERS = ("queued", "written", "spilled", "replayed", "dropped")
REPLAYING = ".replaying"


def _lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@dataclass(slots=True)
class _Replay:
    path: Path
    file: BinaryIO
    offset: int  # bytes of the file already in the database
    counted: int = 0  # unreadable lines before this offset are counted as dropped already

    @property
    def offset_path(self) -> Path:
        return self.path.with_name(self.path.name + ".offset")

    def save(self, offset: int) -> None:
        self.offset = offset
        tmp = self.offset_path.with_name(self.offset_path.name + ".tmp")
        try:
            tmp.write_text(str(offset))
            os.replace(tmp, self.offset_path)
        except OSError as e:  # the ids make a repeated batch harmless: go on with the offset in memory
            log.warning("%s: offset not saved (%s): a crash now would replay one batch again", self.path.name, e)

    def remove(self) -> None:
        self.file.close()
        try:
            self.path.unlink(missing_ok=True)
            self.offset_path.unlink(missing_ok=True)
        except OSError as e:
            log.error("%s: replayed but not removed (%s): a later replay adds nothing", self.path.name, e)


@dataclass(frozen=True, slots=True)
class ReplayBatch:
    items: list[Item]
    end: int  # the offset after these lines
    last: bool  # the file is done once these are written


class Intake:
    def __init__(self, spill_dir: Path, bound: int, counters: dict[str, int]) -> None:
        self.queue: deque[Item] = deque()
        self.bound = bound
        self.in_flight = 0  # taken for a write, not yet settled or put back: they count against the bound
        self.closed = False
        self.counters = counters
        self.spill_dir = spill_dir
        self._prefix = secrets.token_hex(6)  # ids unique across processes and restarts
        self._ids = itertools.count()
        # While the database is out, events go straight to the spill file (written line by line):
        # a crash during an outage then loses no more than the batch being written.
        self.outage = False
        self._spill: TextIO | None = None
        self._replay: _Replay | None = None
        self._spill_failing = False
        self._skipped: set[Path] = set()  # spill files this process could not read: left for a later run
        # Files left by an earlier run or another process are found once here, later ones by our own spilling.
        self.spill_pending = any(spill_dir.glob("events-*.jsonl*"))

    def record(self, event: Event) -> None:
        """Take one event without waiting: queue it, else spill it, else count it as dropped."""
        try:
            item = (f"{self._prefix}{next(self._ids):010x}", event)
            if self.closed:  # after close() nothing takes the queue any more: straight to a spill file
                self.spill([item])
                self.close_spill()
            elif not self.outage and len(self.queue) + self.in_flight < self.bound:
                self.queue.append(item)
                self.counters["queued"] += 1
            else:
                self.spill([item])
        except Exception:  # the proxy must never fail on an event: count it and go on
            self.counters["dropped"] += 1
            log.exception("event dropped")

    def take(self, count: int) -> list[Item]:
        """Up to `count` events from the front of the queue; `settle` or `put_back` them afterwards."""
        queue = self.queue
        items = [queue.popleft() for _ in range(min(count, len(queue)))]
        self.in_flight += len(items)
        return items

    def settle(self, items: list[Item]) -> None:
        """A taken batch is written (or spilled): its room in the bound is free again."""
        self.in_flight -= len(items)

    def spill_queue(self) -> None:
        """Move every queued event to the spill file (the database is out: memory is not durable)."""
        items = list(self.queue)
        self.queue.clear()
        if items:
            self.spill(items)

    def put_back(self, items: list[Item]) -> None:
        """Return a batch that could not be written to the front of the queue, in its order."""
        self.in_flight -= len(items)
        self.queue.extendleft(reversed(items))

    # --- spilling

    def _open_spill(self) -> TextIO:
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        stamp = now_utc().strftime("%Y%m%dT%H%M%S")
        name = f"events-{stamp}-{os.getpid()}-{self._prefix}-{next(self._ids):x}.jsonl"
        # Created and locked under a name no replayer looks at, then renamed: no other process can
        # take the file for replay between its creation and our lock.
        new = self.spill_dir / (name + ".new")
        spill = new.open("a", encoding="utf-8", buffering=1)
        try:
            fcntl.flock(spill.fileno(), fcntl.LOCK_EX)
            new.rename(self.spill_dir / name)
        except OSError:
            spill.close()
            raise
        return spill

    def spill(self, items: list[Item]) -> None:
        """Append events to the spill file; those it cannot write are counted as dropped."""
        for n, (event_id, event) in enumerate(items):
            try:
                line = json.dumps({"id": event_id, **event.to_json()}, ensure_ascii=False) + "\n"
            except (TypeError, ValueError, AttributeError) as e:  # not an Event that can be kept: this one only
                self.counters["dropped"] += 1
                log.error("malformed event dropped: %s", e)
                continue
            try:
                if self._spill is None:
                    self._spill = self._open_spill()
                self._spill.write(line)
            except OSError as e:
                self.counters["dropped"] += len(items) - n
                if not self._spill_failing:  # once per outage, not once per event
                    log.error("spill file not writable, events are dropped: %s", e)
                self._spill_failing = True
                self.close_spill()
                return
            self.counters["spilled"] += 1
            self.spill_pending = True
            self._spill_failing = False

    def close_spill(self) -> None:
        if self._spill is not None:
            with contextlib.suppress(OSError):
                self._spill.close()
            self._spill = None

    # --- replay

    def _next_file(self) -> _Replay | None:
        # Files whose replay was cut short first: their offset says where to go on.
        files = [*sorted(self.spill_dir.glob(f"events-*.jsonl{REPLAYING}")),
                 *sorted(self.spill_dir.glob("events-*.jsonl"))]
        for path in files:
            if path in self._skipped or path.with_name(path.name + REPLAYING) in self._skipped:
                continue
            try:
                file = path.open("rb")
            except FileNotFoundError:  # taken by another process meanwhile
                continue
            except OSError as e:
                self._skip(path, e)
                continue
            try:
                if not _lock(file.fileno()):  # being written or replayed by another process
                    file.close()
                    continue
                replay = _Replay(path, file, 0)
                if path.name.endswith(REPLAYING):
                    with contextlib.suppress(FileNotFoundError, ValueError):
                        replay.offset = int(replay.offset_path.read_text())
                else:
                    replay.path = path.with_name(path.name + REPLAYING)
                    path.rename(replay.path)
            except OSError as e:
                file.close()
                self._skip(path, e)
                continue
            return replay
        return None

    def _skip(self, path: Path, error: OSError) -> None:
        """Leave a spill file this process cannot read for a later run (or an administrator); logged once."""
        self._skipped.add(path)
        log.error("%s: spill file not replayable (%s): left in place for a later run", path, error)

    def next_replay(self, count: int) -> ReplayBatch | None:
        """Up to `count` spilled events from the oldest spill file; None when there are none left."""
        # None always clears spill_pending: the writer must never spin on files it cannot read.
        while True:
            if self._replay is None:
                self.close_spill()  # our own file becomes replayable; new spills start a new one
                self._replay = self._next_file()
                if self._replay is None:
                    self.spill_pending = False
                    return None
            replay = self._replay
            try:
                return self._read_batch(replay, count)
            except OSError as e:
                replay.file.close()
                self._replay = None
                self._skip(replay.path, e)

    def _read_batch(self, replay: _Replay, count: int) -> ReplayBatch:
        replay.file.seek(replay.offset)
        items: list[Item] = []
        while len(items) < count:
            start = replay.file.tell()
            line = replay.file.readline()
            if not line:
                return ReplayBatch(items, replay.file.tell(), last=True)
            try:
                data = json.loads(line)
                event_id = str(data.pop("id"))
                items.append((event_id, Event.from_json(data)))
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                # A line cut off by a crash or a full disk: the event is lost, the rest of the file is not.
                if start >= replay.counted:  # a batch read again after a failed write counts it once
                    replay.counted = start + len(line)
                    self.counters["dropped"] += 1
                    log.warning("%s: unreadable line at offset %d (%s): dropped", replay.path.name, start, e)
        end = replay.file.tell()
        return ReplayBatch(items, end, last=not replay.file.readline())

    def replay_done(self, batch: ReplayBatch) -> None:
        """The batch is in the database: remember how far the file is replayed, or remove it."""
        replay = self._replay
        if replay is None:
            return
        self.counters["replayed"] += len(batch.items)
        if batch.last:
            replay.remove()
            self._replay = None
        else:
            replay.save(batch.end)

    def close(self) -> None:
        """Close the files; an event recorded after this goes straight to a spill file."""
        self.closed = True
        self.close_spill()
        if self._replay is not None:
            self._replay.file.close()
            self._replay = None
