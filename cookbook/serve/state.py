"""What `cookbook serve` keeps: sessions, training runs, samplers, pending futures, and where
`tinker://` checkpoint paths live on disk. No HTTP here (`app.py` is the HTTP side).

Every request that does work returns a request id at once and is settled through a future the
SDK polls (`retrieve_future`), as on the Tinker service. Requests of one training run carry
increasing `seq_id`s and are handed to the local backend in that order, whatever order they
arrive in; a repeated `seq_id` (an SDK retry) gets the first request's id back.

Checkpoints: `tinker://RUN/weights/NAME` (save_state) and `tinker://RUN/sampler_weights/NAME`
are the directories `ROOT/RUN/weights/NAME` and `ROOT/RUN/sampler_weights/NAME` under the
server's checkpoint root, so they outlive the server and a restarted server resumes from them.
The tiny models' tokenizer, as Hugging Face files the SDK's `get_tokenizer()` loads, is written
to `ROOT/tokenizers/byte-v1` when a client first asks about a tiny model.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future as ConcurrentFuture
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeVar

from tinker import types

from cookbook.backends.local.rest import training_run_of
from cookbook.backends.local.sampling import LocalSamplingClient
from cookbook.backends.local.service import LocalServiceClient
from cookbook.backends.local.training import LocalTrainingClient
from cookbook.errors import UserError
from cookbook.hf_byte_tokenizer import save_byte_tokenizer
from cookbook.model_names import is_tiny_model
from cookbook.tokenizers import BYTE_TOKENIZER_KIND

T = TypeVar("T")

ResultKind = Literal["proto_fwdbwd", "proto_sample", "json"]

FINISHED_KEEP_S = 600.0
"""How long a finished future's result stays retrievable (the SDK may retry a retrieve)."""
SESSION_EXPIRY_S = 900.0
"""A session whose client stopped heartbeating (every 10 s) for this long is released."""
SAMPLE_GATHER_S = 0.005
"""How long a sampler's requests are held for the next one to arrive (see `SampleGather`)."""
SAMPLE_GATHER_MAX_S = 0.05
"""The longest the first of them is held."""


class NotFoundError(UserError, KeyError):
    """An unknown session, model, sampler, future or checkpoint (HTTP 404)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass
class Pending:
    """A submitted request: its future, and how to send its result."""

    future: ConcurrentFuture[Any]  # results of every kind of request; `kind` says which
    kind: ResultKind
    created: float = field(default_factory=time.monotonic)
    finished_at: float | None = None


@dataclass
class Run:
    """A training run (one training client) and the order of its requests."""

    client: LocalTrainingClient
    session_id: str
    next_seq: int = 1
    waiting: dict[int, Callable[[], None]] = field(default_factory=dict)
    seen: dict[int, str] = field(default_factory=dict)
    """seq_id -> request id, so an SDK retry of a request gets the same future."""


@dataclass
class Burst:
    """The most sample requests that came together (no `SAMPLE_GATHER_S` gap) to one of a
    session's samplers: an RL loop sends the same number every step, to a new sampler. (A
    count too high costs only the quiet window; one too low would split a batch.)"""

    size: int = 0


class SampleGather:
    """Holds the sample requests of one sampler and submits them together, in arrival order:
    when as many have come as in the session's largest burst, when none came for
    `SAMPLE_GATHER_S`, or when the first has waited `SAMPLE_GATHER_MAX_S`.

    The SDK sends concurrent `sample` calls as separate HTTP requests, which arrive a few ms
    apart (more on a loaded machine); submitted as they come, the backend's own gathering
    window (1 ms) splits them over several batched generations, each costing as much as one
    for all of them. Held and submitted together, they make one, as in-process calls do; with
    the burst's size known, without waiting for the quiet window after the last. A burst larger
    than any before is split once (its size is then known). Lives on the event loop."""

    def __init__(self, burst: Burst | None = None) -> None:
        self._burst = burst or Burst()
        self._calls: list[Callable[[], None]] = []
        self._run = 0  # requests since the last quiet window
        self._first = 0.0
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, call: Callable[[], None]) -> None:
        """Run `call` (which submits one request to the backend) with the others gathered."""
        loop = asyncio.get_running_loop()
        self._last = loop.time()
        if not self._calls:
            self._first = self._last
        self._calls.append(call)
        self._run += 1
        if self._timer is None:
            self._timer = loop.call_at(self._last + SAMPLE_GATHER_S, self._tick)
        if self._run == self._burst.size:  # all that came together last time: go now
            self._submit()

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        quiet = now >= self._last + SAMPLE_GATHER_S
        if self._calls and (quiet or now >= self._first + SAMPLE_GATHER_MAX_S):
            self._submit()
        if quiet:  # the burst ended
            self._burst.size = max(self._burst.size, self._run)
            self._run, self._timer = 0, None
            return
        due = self._last + SAMPLE_GATHER_S
        if self._calls:
            due = min(due, self._first + SAMPLE_GATHER_MAX_S)
        self._timer = loop.call_at(due, self._tick)

    def _submit(self) -> None:
        calls, self._calls = self._calls, []
        for call in calls:
            call()


@dataclass
class Sampler:
    """A sampling session."""

    client: LocalSamplingClient
    session_id: str
    base_model: str
    model_path: str | None
    gather: SampleGather = field(default_factory=SampleGather)


@dataclass
class Session:
    """A client session: what it created, and when it last heartbeated."""

    user_metadata: dict[str, str]
    last_seen: float = field(default_factory=time.monotonic)
    finished: bool = False
    sample_burst: Burst = field(default_factory=Burst)


class ServerState:
    """Everything the server knows, guarded by one lock (handlers run on one event loop; the
    lock covers callbacks from the backend's worker threads)."""

    def __init__(self, service: LocalServiceClient, root: Path) -> None:
        self.service = service
        self.root = root
        self.sessions: dict[str, Session] = {}
        self.runs: dict[str, Run] = {}
        self.samplers: dict[str, Sampler] = {}
        self.pending: dict[str, Pending] = {}
        self._lock = threading.Lock()
        self._byte_tokenizer_dir: Path | None = None

    # --- sessions -----------------------------------------------------------------------------

    def create_session(self, user_metadata: dict[str, str]) -> str:
        session_id = f"local-session-{uuid.uuid4().hex[:16]}"
        self.sessions[session_id] = Session(user_metadata)
        return session_id

    def session(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise NotFoundError(f"unknown session {session_id!r}")
        return session

    def heartbeat(self, session_id: str) -> None:
        self.session(session_id).last_seen = time.monotonic()

    def finish_session(self, session_id: str) -> None:
        self.session(session_id).finished = True
        self._release(session_id)

    def expire(self, now: float | None = None) -> None:
        """Release sessions that stopped heartbeating and results nobody fetched."""
        now = time.monotonic() if now is None else now
        for session_id, session in list(self.sessions.items()):
            if now - session.last_seen > SESSION_EXPIRY_S:
                self._release(session_id)
                del self.sessions[session_id]
        with self._lock:
            for request_id, pending in list(self.pending.items()):
                done_for = now - (pending.finished_at or now)
                if done_for > FINISHED_KEEP_S or now - pending.created > 24 * 3600:
                    del self.pending[request_id]

    def _release(self, session_id: str) -> None:
        for model_id in [m for m, r in self.runs.items() if r.session_id == session_id]:
            del self.runs[model_id]
        for sampler_id in [s for s, x in self.samplers.items() if x.session_id == session_id]:
            del self.samplers[sampler_id]

    def add_sampler(
        self,
        sampler_id: str,
        client: LocalSamplingClient,
        session_id: str,
        base_model: str,
        model_path: str | None,
    ) -> None:
        """A new sampling session; its requests are gathered as its session's last ones were."""
        session = self.sessions.get(session_id)
        gather = SampleGather(session.sample_burst if session is not None else None)
        self.samplers[sampler_id] = Sampler(client, session_id, base_model, model_path, gather)

    # --- futures ------------------------------------------------------------------------------

    def register(self, future: ConcurrentFuture[Any], kind: ResultKind) -> str:
        request_id = f"req-{uuid.uuid4().hex}"
        pending = Pending(future, kind)
        with self._lock:
            self.pending[request_id] = pending

        def mark(_: ConcurrentFuture[Any]) -> None:
            pending.finished_at = time.monotonic()

        future.add_done_callback(mark)
        return request_id

    def get_pending(self, request_id: str) -> Pending:
        with self._lock:
            pending = self.pending.get(request_id)
        if pending is None:
            raise NotFoundError(f"unknown or expired request {request_id!r}")
        return pending

    # --- training runs ------------------------------------------------------------------------

    def add_run(self, model_id: str, client: LocalTrainingClient, session_id: str) -> None:
        client.model_id = model_id
        self.runs[model_id] = Run(client, session_id)
        self.run_dir(model_id).mkdir(parents=True, exist_ok=True)

    def run(self, model_id: str) -> Run:
        run = self.runs.get(model_id)
        if run is None:
            raise NotFoundError(f"unknown model {model_id!r} (its session may have ended)")
        return run

    def in_order(
        self,
        model_id: str,
        seq_id: int | None,
        kind: ResultKind,
        submit: Callable[[], ConcurrentFuture[T]],
    ) -> str:
        """Run `submit` (which queues work on the run's client and returns its future) once
        every earlier `seq_id` of the run has been submitted; return the request id."""
        run = self.run(model_id)
        if seq_id is not None and seq_id in run.seen:
            return run.seen[seq_id]
        outer: ConcurrentFuture[T] = ConcurrentFuture()
        request_id = self.register(outer, kind)

        def go() -> None:
            try:
                inner = submit()
            except Exception as exc:  # refused at submission: the future carries it
                outer.set_exception(exc)
                return
            chain(inner, outer)

        if seq_id is None:
            go()
            return request_id
        if seq_id < run.next_seq:
            raise UserError(
                f"seq_id {seq_id} of model {model_id} comes after {run.next_seq - 1} was "
                "already run; requests of a training client are numbered in order"
            )
        run.seen[seq_id] = request_id
        run.waiting[seq_id] = go
        while run.next_seq in run.waiting:
            run.waiting.pop(run.next_seq)()
            run.next_seq += 1
        return request_id

    def tokenizer_id(self, base_model: str) -> str:
        """What the SDK should load the tokenizer of `base_model` from: for the tiny models, the
        directory of their byte tokenizer's Hugging Face files (written once); otherwise the
        model's own name (a Hugging Face directory holds its tokenizer)."""
        if not is_tiny_model(base_model):
            return base_model
        if self._byte_tokenizer_dir is None:
            self._byte_tokenizer_dir = save_byte_tokenizer(
                self.root / "tokenizers" / BYTE_TOKENIZER_KIND
            )
        return str(self._byte_tokenizer_dir)

    # --- checkpoints --------------------------------------------------------------------------

    def run_dir(self, model_id: str) -> Path:
        return self.root / _safe(model_id)

    def checkpoint_dir(self, model_id: str, kind: str, name: str) -> tuple[Path, str]:
        """The directory for checkpoint `name` of `kind` (`weights` / `sampler_weights`) and
        its `tinker://` path."""
        if not _is_plain_name(name):
            raise UserError(f"bad checkpoint name {name!r}; use a name such as '000010'")
        return self.run_dir(model_id) / kind / name, f"tinker://{model_id}/{kind}/{name}"

    def save_dir(self, model_id: str, kind: str, name: str) -> tuple[Path, str]:
        """`checkpoint_dir` for a name a client saves under. A name that is not a plain file
        name (a path: the cookbook's own loops give the local backend paths in their run
        directory) is kept as its last parts plus a digest of the whole, so distinct names stay
        distinct and nothing is written outside the checkpoint root."""
        if _is_plain_name(name):
            return self.checkpoint_dir(model_id, kind, name)
        parts = [p for p in PurePosixPath(name).parts if p not in ("/", ".", "..")]
        if not parts:
            raise UserError(f"bad checkpoint name {name!r}; use a name such as '000010'")
        tail = re.sub(r"[^A-Za-z0-9._-]", "_", "-".join(parts[-2:]))[:64]
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        return self.checkpoint_dir(model_id, kind, f"{tail}-{digest}")

    def local_path(self, tinker_path: str) -> str:
        """The directory of a `tinker://RUN/KIND/NAME` path (a plain path passes through)."""
        if not tinker_path.startswith("tinker://"):
            return tinker_path
        try:
            parsed = types.ParsedCheckpointTinkerPath.from_tinker_path(tinker_path)
        except ValueError:
            raise UserError(
                f"bad tinker path {tinker_path!r}; want tinker://RUN/weights/NAME"
            ) from None
        kind, _, name = parsed.checkpoint_id.partition("/")
        directory, _ = self.checkpoint_dir(parsed.training_run_id, kind, name)
        if not (directory / "meta.json").is_file():
            raise NotFoundError(f"no checkpoint at {tinker_path}")
        return str(directory)

    def training_run(self, model_id: str) -> types.TrainingRun:
        """A live run, or one known from its checkpoints on disk."""
        run = self.runs.get(model_id)
        if run is not None:
            info = run.client.get_info()
            return types.TrainingRun(
                training_run_id=model_id,
                base_model=info.model_data.model_name or "",
                model_owner="local",
                is_lora=bool(info.is_lora),
                lora_rank=info.lora_rank,
                last_request_time=datetime.now(UTC),
                user_metadata=dict(run.client.user_metadata) or None,
            )
        directory = self.run_dir(model_id)
        for meta in sorted(directory.glob("*/*/meta.json")):
            return training_run_of(str(meta.parent), run_id=model_id)
        raise NotFoundError(f"unknown training run {model_id!r}")


def chain(inner: ConcurrentFuture[T], outer: ConcurrentFuture[T]) -> None:
    """Settle `outer` with `inner`'s result or error once `inner` is done."""

    def copy(done: ConcurrentFuture[T]) -> None:
        if outer.done():
            return
        exc = done.exception()
        if exc is not None:
            outer.set_exception(exc)
        else:
            outer.set_result(done.result())

    inner.add_done_callback(copy)


def _is_plain_name(name: str) -> bool:
    """One directory name: no separator, not `.`/`..`, nothing the file system refuses."""
    return (
        bool(name)
        and "/" not in name
        and "\x00" not in name
        and name not in (".", "..")
        and len(name.encode()) <= 200
    )


def _safe(model_id: str) -> str:
    """A model id as one directory name."""
    cleaned = "".join(c if c.isalnum() or c in "-_.:" else "_" for c in model_id)
    if not cleaned or cleaned in (".", ".."):
        raise UserError(f"bad model id {model_id!r}")
    return cleaned
