"""`LocalSamplingClient`: tinker's `SamplingClient` on a frozen local model.

`sample()` and `compute_logprobs()` validate their arguments at once (a bad request raises
there) and queue the work. The client's worker thread runs a `generation.DecodeEngine`
(continuous batching): requests that arrive while it generates join the running batch at the
next decode step (an RL runner fires one per env or group from asyncio), and scoring requests
are served between two steps.

The hand-offs between the caller and the worker are per burst, not per request: requests made
on an event loop's thread are handed to the worker together at the end of the loop's tick (one
wake-up, no gathering window; `.result()` or `.future()` hands them over at once), and the
coroutines awaiting the requests that one decode step finishes are woken with one call into
their loop (`worker.LoopWaker`).

Semantics, as in tinker: the reported logprobs are the model's own (temperature 1, no top-k/p),
so they match `compute_logprobs` and the training client's `forward`. `stop=None` stops at the
tokenizer's EOS, `stop=[]` never stops early, a list of token ids stops at any of them, and
stop strings stop once the decoded output contains one (EOS still stops too). The token that
completes a stop is kept in `tokens`. A request without a seed gets one from the client's own
generator, drawn in submission order.

The public methods have the SDK's names, arguments and return types (futures; `*_async`
coroutines). `topk_prompt_logprobs` and `prompt_logprobs_last_n` are computed on the worker
thread after the request's batch; `topk_sample_logprobs`, `target_prompt_logprobs` and
`prompt_alt_tokens_k` raise `UnsupportedError`. The client is also its own finished future
(the SDK's client-creating methods return a future of the client).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import math
import random
import threading
import uuid
import weakref
from collections.abc import Callable
from concurrent.futures import Future as ConcurrentFuture
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch
from tinker import types
from tinker.types.topk_logprobs import MASK_LOGPROB, TopkLogprobs

from cookbook.backends.local.batch import BadRequestError, UnsupportedError
from cookbook.backends.local.generation import DecodeEngine, GenResult, GenRow, score_prompts
from cookbook.backends.local.models import LocalModel
from cookbook.backends.local.worker import BatchedFuture, JobQueue, LoopWaker, ReadyFuture

if TYPE_CHECKING:
    from cookbook.tokenizers import Tokenizer


A = TypeVar("A")
B = TypeVar("B")

_KEEP_BUFFER_BYTES = 1 << 28
"""An idle client keeps its engine's cache (and CUDA graphs) up to this size for the next
requests; a larger one is freed and allocated again when requests come."""


@dataclass
class _SampleJob:
    prompt: list[int]
    rows: list[GenRow]
    include_prompt_logprobs: bool
    future: ConcurrentFuture[types.SampleResponse] = field(default_factory=ConcurrentFuture)

    def start(self) -> bool:
        return self.future.set_running_or_notify_cancel()

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


@dataclass
class _ScoreJob:
    prompt: list[int]
    future: ConcurrentFuture[list[float | None]] = field(default_factory=ConcurrentFuture)

    def start(self) -> bool:
        return self.future.set_running_or_notify_cancel()

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class LocalSamplingClient(ReadyFuture["LocalSamplingClient"]):
    """Samples from, and scores prompts under, one fixed set of weights."""

    def __init__(
        self,
        model: LocalModel,
        *,
        seed: int = 0,
        model_path: str | None = None,
        max_batch_rows: int = 1024,
    ) -> None:
        """`max_batch_rows`: sequences decoded together at most (more wait for a free slot).
        Per token, larger batches are cheaper (measured on the tiny model up to 1024 rows);
        1024 holds 128 RL groups of 8 in one batch."""
        self._model = model
        self._tokenizer = model.tokenizer
        self._seed_rng = random.Random(seed)
        self._max_batch_rows = max_batch_rows
        self.model_path = model_path
        """Where the weights came from (None for an in-memory snapshot or a base model)."""
        self.batches_served = 0
        """Generation runs started so far: a run lasts while requests keep it busy, and every
        request that arrives meanwhile joins it."""
        self._engine: DecodeEngine | None = None
        eos = getattr(self._tokenizer, "eos_token_id", None)
        self._eos: frozenset[int] = frozenset([eos]) if isinstance(eos, int) else frozenset()
        # Requests made from threads without an event loop get a short gathering window when
        # the worker is idle, so concurrent ones start as one batch; those made on a loop are
        # handed over per tick (`_enqueue`). Requests that come later join the running batch.
        # The queue reaches this client weakly: no reference cycle, so a client dropped after
        # its last request (an RL run makes one per step) frees its weights and caches at once,
        # not at the next full garbage collection (which a long run defers: `_loop_gc`).
        self._queue: JobQueue[_SampleJob | _ScoreJob] = JobQueue(
            f"cookbook-sampler-{uuid.uuid4().hex[:6]}",
            _weak_process(weakref.ref(self)),
            batch=True,
            gather_s=2e-4,
        )
        self._staged: dict[asyncio.AbstractEventLoop, list[_SampleJob | _ScoreJob]] = {}
        """Requests made during the current tick of each event loop, not yet handed over."""
        self._staged_lock = threading.Lock()
        self._waker = LoopWaker()
        self._id_prefix = uuid.uuid4().hex[:16]
        self._sequence_numbers = itertools.count()

    # --- the tinker API ---------------------------------------------------------------------

    def sample(
        self,
        prompt: types.ModelInput,
        num_samples: int,
        sampling_params: types.SamplingParams,
        include_prompt_logprobs: bool = False,
        topk_prompt_logprobs: int = 0,
        topk_sample_logprobs: int = 0,
        target_prompt_logprobs: types.TensorData | None = None,
        prompt_alt_tokens_k: int = 0,
        prompt_logprobs_last_n: int | None = None,
    ) -> BatchedFuture[types.SampleResponse]:
        """Queue `num_samples` completions of `prompt`; the future gives a `SampleResponse`.
        `include_prompt_logprobs` adds the prompt's logprobs, `topk_prompt_logprobs=k` the k
        likeliest tokens at each prompt position, `prompt_logprobs_last_n=n` keeps only the
        last n positions of both (earlier ones are None)."""
        _refuse_unsupported(topk_sample_logprobs, target_prompt_logprobs, prompt_alt_tokens_k)
        top_k = _check_count("topk_prompt_logprobs", topk_prompt_logprobs)
        tokens = self._check_prompt(prompt, "sample")
        _check_last_n(prompt_logprobs_last_n, len(tokens), include_prompt_logprobs)
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise BadRequestError(f"sample: num_samples must be a positive int, got {num_samples}")
        p = sampling_params
        room = self._model.context_length - len(tokens)
        if p.max_tokens is not None and p.max_tokens < 0:
            raise BadRequestError(f"sample: max_tokens must be >= 0, got {p.max_tokens}")
        max_new = room if p.max_tokens is None else min(p.max_tokens, room)
        if not math.isfinite(p.temperature) or p.temperature < 0:
            raise BadRequestError(f"sample: temperature must be >= 0, got {p.temperature}")
        if not 0.0 < p.top_p <= 1.0:
            raise BadRequestError(f"sample: top_p must be in (0, 1], got {p.top_p}")
        stop_ids, stop_strings = self._parse_stop(p.stop)
        seed = p.seed if p.seed is not None else self._seed_rng.getrandbits(63)
        rows = [
            GenRow(
                prompt=tokens,
                max_new=max_new,
                temperature=p.temperature,
                top_k=p.top_k,
                top_p=p.top_p,
                stop_ids=stop_ids,
                stop_strings=stop_strings,
                seed=seed,
                sample_index=j,
            )
            for j in range(num_samples)
        ]
        job = _SampleJob(tokens, rows, include_prompt_logprobs or top_k > 0)
        self._enqueue(job)
        if top_k == 0 and prompt_logprobs_last_n is None:
            return self._future(job.future)
        return self._future(
            _then(
                job.future,
                lambda response: self._with_prompt_extras(
                    response, tokens, top_k, prompt_logprobs_last_n, include_prompt_logprobs
                ),
            )
        )

    async def sample_async(
        self,
        prompt: types.ModelInput,
        num_samples: int,
        sampling_params: types.SamplingParams,
        include_prompt_logprobs: bool = False,
        topk_prompt_logprobs: int = 0,
        topk_sample_logprobs: int = 0,
        target_prompt_logprobs: types.TensorData | None = None,
        prompt_alt_tokens_k: int = 0,
        prompt_logprobs_last_n: int | None = None,
    ) -> types.SampleResponse:
        """`await sample(...)`."""
        return await self.sample(
            prompt,
            num_samples,
            sampling_params,
            include_prompt_logprobs,
            topk_prompt_logprobs,
            topk_sample_logprobs,
            target_prompt_logprobs,
            prompt_alt_tokens_k,
            prompt_logprobs_last_n,
        )

    def compute_logprobs(
        self, prompt: types.ModelInput, prompt_logprobs_last_n: int | None = None
    ) -> BatchedFuture[list[float | None]]:
        """log p of each prompt token given the ones before it (None for the first, and for
        all but the last `prompt_logprobs_last_n` when given)."""
        tokens = self._check_prompt(prompt, "compute_logprobs", need_room=False)
        _check_last_n(prompt_logprobs_last_n, len(tokens), include_prompt_logprobs=True)
        job = _ScoreJob(tokens)
        self._enqueue(job)
        if prompt_logprobs_last_n is None:
            return self._future(job.future)
        keep = prompt_logprobs_last_n
        return self._future(
            _then(job.future, lambda lps: [None] * (len(lps) - keep) + list(lps[-keep:]))
        )

    async def compute_logprobs_async(
        self, prompt: types.ModelInput, prompt_logprobs_last_n: int | None = None
    ) -> list[float | None]:
        """`await compute_logprobs(...)`."""
        return await self.compute_logprobs(prompt, prompt_logprobs_last_n)

    def _with_prompt_extras(
        self,
        response: types.SampleResponse,
        tokens: list[int],
        top_k: int,
        last_n: int | None,
        include_prompt_logprobs: bool,
    ) -> types.SampleResponse:
        """Add top-k prompt logprobs and apply `prompt_logprobs_last_n` (runs on the worker
        thread, right after the request's batch)."""
        prompt_np = response.prompt_logprobs_np if include_prompt_logprobs else None
        topk = _prompt_topk(self._model, tokens, top_k) if top_k > 0 else None
        if last_n is not None:
            cut = len(tokens) - last_n
            if prompt_np is not None:
                prompt_np = prompt_np.copy()
                prompt_np[:cut] = np.nan
            if topk is not None:
                topk.token_ids[:cut] = 0
                topk.logprobs[:cut] = MASK_LOGPROB
        return dataclasses.replace(
            response, prompt_logprobs_np=prompt_np, topk_prompt_logprobs_np=topk
        )

    def get_tokenizer(self) -> Tokenizer:
        """The model's tokenizer."""
        return self._tokenizer

    @property
    def model(self) -> LocalModel:
        """The frozen model this client serves."""
        return self._model

    def get_base_model(self) -> str:
        """The base model name (`tiny...` or the Hugging Face directory)."""
        return self._model.base_model

    async def get_base_model_async(self) -> str:
        """`get_base_model` from a coroutine."""
        return self._model.base_model

    # --- handing requests to the worker -------------------------------------------------------

    def _enqueue(self, job: _SampleJob | _ScoreJob) -> None:
        """Queue `job`: at once from a thread without a running event loop, else at the end of
        the loop's tick with every other request made during it (one wake-up of the worker)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._queue.put(job)
            return
        with self._staged_lock:
            staged = self._staged.get(loop)
            if staged is None:
                staged = self._staged[loop] = []
                loop.call_soon(self._hand_over, loop)
            staged.append(job)

    def _hand_over(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Queue the requests staged on `loop` (None: on every loop) as one burst."""
        with self._staged_lock:
            if not self._staged:
                return
            if loop is None:
                jobs = [job for staged in self._staged.values() for job in staged]
                self._staged.clear()
            else:
                jobs = self._staged.pop(loop, [])
        if jobs:
            self._queue.put_many(jobs, gather=False)

    def _future(self, future: ConcurrentFuture[A]) -> BatchedFuture[A]:
        return BatchedFuture(future, self._waker, self._hand_over)

    # --- validation ---------------------------------------------------------------------------

    def _check_prompt(
        self, prompt: types.ModelInput, what: str, need_room: bool = True
    ) -> list[int]:
        try:
            tokens = list(prompt.to_ints())
        except (ValueError, AttributeError):
            raise BadRequestError(f"{what}: prompt must be a ModelInput of token chunks") from None
        if not tokens:
            raise BadRequestError(f"{what}: prompt is empty; give at least one token")
        vocab = self._model.vocab_size
        for j, t in enumerate(tokens):
            if not 0 <= t < vocab:
                raise BadRequestError(
                    f"{what}: prompt token {t} at position {j} is outside the vocabulary [0, {vocab})"
                )
        limit = self._model.context_length - (1 if need_room else 0)
        if len(tokens) > limit:
            raise BadRequestError(
                f"{what}: prompt of {len(tokens)} tokens leaves no room in the model's context "
                f"of {self._model.context_length}; shorten it"
            )
        return tokens

    def _parse_stop(
        self, stop: str | list[str] | list[int] | object
    ) -> tuple[frozenset[int], tuple[str, ...]]:
        if stop is None:
            return self._eos, ()
        items = (
            [stop]
            if isinstance(stop, str)
            else list(stop)
            if isinstance(stop, list | tuple)
            else None
        )
        if items is None:
            raise BadRequestError(f"sample: stop must be a string or a list, got {stop!r}")
        if all(isinstance(s, str) for s in items):
            strings = tuple(s for s in items if isinstance(s, str) and s)
            return (self._eos if strings else frozenset()), strings
        if all(isinstance(s, int) and not isinstance(s, bool) for s in items):
            return frozenset(int(s) for s in items if isinstance(s, int)), ()
        raise BadRequestError(f"sample: stop mixes strings and token ids: {items!r}; use one kind")

    # --- the worker ---------------------------------------------------------------------------
    # (`_process`, `_start` and `_finish` serve the queued jobs; the helpers at the end of the
    # module add what the public methods ask for on top.)

    def _process(self, jobs: list[_SampleJob | _ScoreJob]) -> None:
        """Serve `jobs` and every job that arrives until the engine is idle."""
        if self._engine is None:
            self._engine = DecodeEngine(
                self._model, self._tokenizer.decode, max_rows=self._max_batch_rows
            )
        engine = self._engine
        self.batches_served += 1
        waker = self._waker  # the results of one step wake their coroutines together
        try:
            with waker:
                self._start(jobs, engine)
            with torch.inference_mode():
                while engine.busy:
                    with waker:
                        engine.step_inference()
                        if self._queue.waiting:
                            new = self._queue.poll()
                            if new:
                                self._start(new, engine)
        except BaseException:
            self._engine = None  # its rows belong to failed jobs
            raise
        if engine.buffer_bytes > _KEEP_BUFFER_BYTES:
            engine.release()  # a client nobody samples from should not hold a large cache

    def _start(self, jobs: list[_SampleJob | _ScoreJob], engine: DecodeEngine) -> None:
        """Score what needs scoring (one pass) and hand the sampling rows to the engine."""
        to_score = [j for j in jobs if isinstance(j, _ScoreJob) or j.include_prompt_logprobs]
        scores = score_prompts(self._model, [j.prompt for j in to_score]) if to_score else []
        prompt_lps = {id(j): s for j, s in zip(to_score, scores, strict=True)}
        for job in jobs:
            if isinstance(job, _ScoreJob):
                job.future.set_result(prompt_lps[id(job)])
            else:
                engine.submit(
                    job.rows, functools.partial(self._finish, job, prompt_lps.get(id(job)))
                )

    def _finish(
        self, job: _SampleJob, prompt_lps: list[float | None] | None, results: list[GenResult]
    ) -> None:
        prefix, numbers = self._id_prefix, self._sequence_numbers
        sequences = [
            types.SampledSequence(
                stop_reason=r.stop_reason,
                sequence_id=f"{prefix}{next(numbers):016x}",
                tokens_np=r.tokens_np,
                logprobs_np=r.logprobs_np,
            )
            for r in results
        ]
        prompt_np = None
        if prompt_lps is not None:
            prompt_np = np.array([math.nan if x is None else x for x in prompt_lps], np.float32)
        job.future.set_result(
            types.SampleResponse(sequences=sequences, prompt_logprobs_np=prompt_np)
        )


# --- helpers of the public methods ------------------------------------------------------------


def _then(source: ConcurrentFuture[A], transform: Callable[[A], B]) -> ConcurrentFuture[B]:
    """A future of `transform(source's result)`, computed in the thread that settles `source`
    (the worker); an exception in either settles it with that exception."""
    out: ConcurrentFuture[B] = ConcurrentFuture()

    def settle(done: ConcurrentFuture[A]) -> None:
        if not out.set_running_or_notify_cancel():
            return
        try:
            out.set_result(transform(done.result()))
        except BaseException as exc:  # delivered through the future
            out.set_exception(exc)

    source.add_done_callback(settle)
    return out


def _prompt_topk(model: LocalModel, tokens: list[int], k: int) -> TopkLogprobs:
    """The k likeliest tokens and their logprobs at every prompt position (row 0, which has no
    context, is the SDK's empty row: id 0, logprob -99999)."""
    n = len(tokens)
    k_eff = min(k, model.vocab_size)
    ids = np.zeros((n, k), dtype=np.int32)
    lps = np.full((n, k), MASK_LOGPROB, dtype=np.float32)
    if n > 1:
        with torch.inference_mode():
            logits = model.logits(torch.tensor([tokens[:-1]], device=model.device))[0]
            top = torch.log_softmax(logits.float(), dim=-1).topk(k_eff, dim=-1)
        ids[1:, :k_eff] = top.indices.cpu().numpy()
        lps[1:, :k_eff] = top.values.cpu().numpy()
    return TopkLogprobs(token_ids=ids, logprobs=lps)


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequestError(f"sample: {name} must be an int >= 0, got {value!r}")
    return value


def _check_last_n(last_n: int | None, prompt_len: int, include_prompt_logprobs: bool) -> None:
    """The SDK's checks of `prompt_logprobs_last_n` (and the server's, against the prompt)."""
    if last_n is None:
        return
    if isinstance(last_n, bool) or not isinstance(last_n, int) or last_n < 1:
        raise BadRequestError(f"prompt_logprobs_last_n must be 1 or greater, got {last_n!r}")
    if not include_prompt_logprobs:
        raise BadRequestError(
            "prompt_logprobs_last_n applies to prompt logprobs; set include_prompt_logprobs"
        )
    if last_n > prompt_len - 1:
        raise BadRequestError(
            f"prompt_logprobs_last_n={last_n} must be at most len(prompt) - 1 = {prompt_len - 1}"
        )


def _refuse_unsupported(
    topk_sample_logprobs: int,
    target_prompt_logprobs: types.TensorData | None,
    prompt_alt_tokens_k: int,
) -> None:
    asked = [
        name
        for name, on in (
            ("topk_sample_logprobs", topk_sample_logprobs != 0),
            ("target_prompt_logprobs", target_prompt_logprobs is not None),
            ("prompt_alt_tokens_k", prompt_alt_tokens_k != 0),
        )
        if on
    ]
    if asked:
        raise UnsupportedError(
            f"sample: the local backend does not compute {', '.join(asked)}; use "
            "include_prompt_logprobs / topk_prompt_logprobs, or the Tinker service"
        )


def _weak_process(
    client: weakref.ref[LocalSamplingClient],
) -> Callable[[list[_SampleJob | _ScoreJob]], None]:
    """The sampler queue's `process`: `client._process`, through a weak reference."""

    def process(jobs: list[_SampleJob | _ScoreJob]) -> None:
        target = client()
        if target is None:  # nobody can wait for these any more: the client is gone
            raise RuntimeError("the sampling client was closed")
        target._process(jobs)

    return process
