"""The contact log: turns the signaling core's records into persistent contacts and recordings.

It listens to :class:`signaling.records.Records` (every contact and monitor session, every change) and

- keeps each contact and monitor session in the :class:`ContactStore` (a fresh, restart-proof id for
  each: the core's call ids start again at ``call-1`` after a restart);
- starts the call's recording when the agent answers (per queue ``record``: none, agent, customer,
  both) through a :class:`Recorder`: in this process a :class:`CallRecorder` (the mixer's tap and a
  writer thread); with media workers, the worker that mixes the call;
- stops it when the call ends, or when the writer reports an error (then the error goes into the
  contact record; the call is not touched);
- stores chat transcripts as JSON files (:meth:`save_transcript`);
- deletes contacts older than ``retention_days`` with their files.

Files are stored under names that do not depend on where a node keeps them (``recordings/<id>.ogg``,
``transcripts/<id>.json``): each node maps the first part to its ``recordings_dir`` /
``transcripts_dir``, so nodes of a cluster that mount shared storage at different places serve each
other's files.

Everything here runs on the event loop and does no I/O itself: the store and the recording writer
have their own threads; file deletion runs on a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import structlog

from .contact_models import Contact, ModeChange, MonitorSession, new_id
from .records import ContactRecord, MonitorRecord
from .settings import Settings
from .store import ContactStore, SqlContactStore

log = structlog.get_logger("bargein.contacts")

_CHANNELS = {"none": (False, False), "agent": (True, False), "customer": (False, True), "both": (True, True)}
RETENTION_EVERY_S = 3600.0
KEEP_RECENT_RECORDINGS = 4096  # recordings whose late errors (after the call ended) still reach their contact


class Recorder(Protocol):
    """Records calls wherever their audio is mixed; reports errors with ``on_error(rec_id, reason)``,
    from any thread."""

    on_error: Callable[[int, str], None]

    def start(self) -> None: ...

    def record(self, call_id: str, rec_id: int, path: Path, channels: tuple[bool, bool]) -> str | None:
        """Start; returns why it could not, or None."""

    def stop(self, rec_id: int) -> None: ...

    def close(self) -> None:
        """Finish every file (blocking)."""


def default_store(settings: Settings) -> ContactStore:
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    return SqlContactStore(settings.database_url or f"sqlite:///{data / 'contacts.sqlite3'}")


class ContactLog:
    def __init__(self, settings: Settings, recorder: Recorder, store: ContactStore | None = None) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        # stored file names start with one of these; each maps to its folder on this node
        self.folders = {
            "recordings": (settings.recordings_dir or self.data_dir / "recordings").resolve(),
            "transcripts": (settings.transcripts_dir or self.data_dir / "transcripts").resolve(),
        }
        self.store = store or default_store(settings)
        self.recorder = recorder
        recorder.on_error = self._recorder_error
        self.contacts: dict[str, Contact] = {}  # live call id -> its persistent contact
        self.sessions: dict[str, MonitorSession] = {}  # live monitor session id -> persistent session
        self.recording: dict[str, int] = {}  # live call id -> recording id
        self._rec_calls: dict[int, str] = {}  # recording id -> call id, while recording
        # recording id -> its contact, also for a while after the call: an error may come after the end
        self._rec_contacts: OrderedDict[int, Contact] = OrderedDict()
        self._rec_ids = itertools.count(0)
        self._transcripts: set[asyncio.Task[Any]] = set()  # transcript writes in flight
        self._loop: asyncio.AbstractEventLoop | None = None
        self._retention: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.store.start()
        self.recorder.start()
        if self.settings.retention_days is not None:
            self._retention = self._loop.create_task(self._retain(), name="bargein-retention")

    async def close(self) -> None:
        if self._retention is not None:
            self._retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention
        for call_id in list(self.recording):
            self._stop_recording(call_id)
        await asyncio.to_thread(self.recorder.close)
        await self.store.close()

    # ------------------------------------------------------------------ records listener
    def contact_changed(self, rec: ContactRecord) -> None:
        c = self.contacts.get(rec.contact_id)
        if c is None:
            c = self.contacts[rec.contact_id] = Contact(
                contact_id=new_id(rec.initiated), call_id=rec.contact_id, queue=rec.queue, customer=rec.customer,
                initiated=rec.initiated, channel=rec.channel)
        c.agent, c.parties, c.connected = rec.agent, list(rec.parties), rec.answered
        c.disconnected, c.disconnect_reason, c.ended_by = rec.ended, rec.end_reason, rec.ended_by
        if rec.answered is not None and rec.ended is None and rec.contact_id not in self.recording \
                and c.recording_path is None and rec.channel == "voice":
            self._start_recording(c)
        if rec.ended is not None:
            self._stop_recording(rec.contact_id)
            del self.contacts[rec.contact_id]
        self.store.save_contact(c)

    def monitor_changed(self, rec: MonitorRecord) -> None:
        s = self.sessions.get(rec.session_id)
        if s is None:
            contact = self.contacts.get(rec.contact_id)
            s = self.sessions[rec.session_id] = MonitorSession(
                session_id=new_id(rec.started), contact_id=contact.contact_id if contact else rec.contact_id,
                supervisor=rec.supervisor, started=rec.started, initial_mode=rec.initial_mode)
        s.mode_changes = [ModeChange(at=t, mode=mode, by=by) for t, mode, by in rec.mode_changes]
        s.ended, s.end_reason = rec.ended, rec.end_reason
        if rec.ended is not None:
            del self.sessions[rec.session_id]
        self.store.save_monitor(s)

    # ------------------------------------------------------------------ recordings
    def _start_recording(self, c: Contact) -> None:
        queue = self.settings.queues.get(c.queue)
        sides = queue.record if queue is not None else "both"
        if sides == "none":
            return
        rec_id = next(self._rec_ids)
        rel = f"recordings/{c.contact_id}.ogg"
        why_not = self.recorder.record(c.call_id, rec_id, self.folders["recordings"] / f"{c.contact_id}.ogg",
                                       _CHANNELS[sides])
        if why_not is not None:
            c.recording_error = why_not
            return
        c.recording_path = rel
        self._rec_contacts[rec_id] = c
        while len(self._rec_contacts) > KEEP_RECENT_RECORDINGS:
            self._rec_contacts.popitem(last=False)
        self.recording[c.call_id] = rec_id
        self._rec_calls[rec_id] = c.call_id
        log.info("contacts.recording_started", call_id=c.call_id, contact_id=c.contact_id, sides=sides)

    def _stop_recording(self, call_id: str) -> None:
        rec_id = self.recording.pop(call_id, None)
        if rec_id is None:
            return
        self._rec_calls.pop(rec_id, None)
        self.recorder.stop(rec_id)

    def _recorder_error(self, rec_id: int, reason: str) -> None:
        """From the writer thread (or any other): record the error on the loop, stop the tap."""
        if self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._recording_failed, rec_id, reason)
        except RuntimeError:  # the loop is closed (shutdown)
            pass

    def _recording_failed(self, rec_id: int, reason: str) -> None:
        c = self._rec_contacts.get(rec_id)
        call_id = self._rec_calls.get(rec_id)
        if call_id is not None:
            self._stop_recording(call_id)
        if c is None or c.recording_error is not None:  # the first error is the one that counts
            return
        log.warning("contacts.recording_failed", call_id=c.call_id, contact_id=c.contact_id, why=reason)
        c.recording_error = reason
        self.store.save_contact(c)

    # ------------------------------------------------------------------ transcripts
    async def save_transcript(self, call_id: str, messages: list[dict[str, Any]]) -> Path | None:
        """Write a chat contact's transcript as JSON (atomically, off the loop); ``None`` for an unknown
        contact. Call it as the chat goes on or when it ends."""
        c = self.contacts.get(call_id)
        if c is None:
            return None
        return await self.write_transcript(c, messages)

    def chat_ended(self, chat: Any) -> None:
        """The signaling core's chat hook: store the ended chat's transcript (the contact is still live here)."""
        c = self.contacts.get(chat.contact_id)
        if c is not None:
            task = asyncio.get_running_loop().create_task(self.write_transcript(c, chat.as_dict()["transcript"]))
            self._transcripts.add(task)
            task.add_done_callback(self._transcripts.discard)

    async def write_transcript(self, c: Contact, messages: list[dict[str, Any]]) -> Path:
        path = self.folders["transcripts"] / f"{c.contact_id}.json"
        doc = {"contact_id": c.contact_id, "channel": c.channel, "queue": c.queue, "messages": messages}
        await asyncio.to_thread(_write_json, path, doc)
        c.transcript_path = f"transcripts/{c.contact_id}.json"
        self.store.save_contact(c)
        return path

    # ------------------------------------------------------------------ retention
    async def _retain(self) -> None:
        while True:
            await self.expire()
            await asyncio.sleep(RETENTION_EVERY_S)

    async def expire(self, now: float | None = None) -> int:
        """Delete contacts older than the retention setting, and their files; returns how many."""
        if self.settings.retention_days is None:
            return 0
        before = (time.time() if now is None else now) - self.settings.retention_days * 86400
        try:
            old = await self.store.expire(before)
            await asyncio.to_thread(self._delete_files, old)
        except Exception:
            log.exception("contacts.retention_failed")
            return 0
        return len(old)

    def _delete_files(self, contacts: list[Contact]) -> None:
        for c in contacts:
            for rel in (c.recording_path, c.transcript_path):
                path = self.path_of(rel) if rel else None
                if path is not None:  # another node of a cluster may have deleted it already
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()

    def path_of(self, rel: str) -> Path | None:
        """A stored file name (``recordings/<id>.ogg``, ``transcripts/<id>.json``) as the file on this node:
        under the folder its first part names, else under the data folder; None if it would leave it."""
        first, _, rest = rel.partition("/")
        base, name = (self.folders[first], rest) if first in self.folders and rest else (self.data_dir, rel)
        p = (base / name).resolve()
        return p if p.is_relative_to(base) else None


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1))
    os.replace(tmp, path)
