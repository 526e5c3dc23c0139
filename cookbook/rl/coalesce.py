"""One `sample(prompt, num_samples=k)` call for the envs of a group that ask for the same thing.

The envs of a group very often sample from the same prompt at the same moment: every env of a
single-turn group shares its prompt (math, pairwise), and a game's first turn starts from the same
board. Sent one by one, those are k requests; through the tinker SDK each costs two HTTP requests
and the client's own CPU, on `cookbook serve` and on the Tinker service alike. A `GroupSampling`
(one per group, on the group's own event loop: never shared across threads) gathers, for one loop
tick, the requests with identical prompt tokens and sampling parameters (seed aside) and sends
them as one call.

Seeds. A lone request goes out unchanged, with its own seed. A gathered one is sent with a seed
mixed from its members' seeds, and member j (members ordered by their own seeds, so the order is
fixed whatever order they arrived in) takes sequence j; the local sampler draws sample j of a
request from `[seed, j]`, so the members' draws stay distinct and a replay draws the same ones,
provided the same requests meet. They meet when they are made in the same loop tick, which holds
whenever env code between two samples awaits nothing that finishes on another thread; a replay
that must match bit for bit (`deterministic=true`, `cookbook/rl/serial_sampling.py`) therefore
samples every request alone (`SamplingPolicy` skips this module for a serial client).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tinker import types as tinker_types

    from cookbook.backends.protocol import SamplingClient


@dataclass
class _Pending:
    """Requests waiting for the end of the tick, all for the same client, prompt and params."""

    client: SamplingClient
    prompt: tinker_types.ModelInput
    params: tinker_types.SamplingParams
    members: list[tuple[int, asyncio.Future[tinker_types.SampledSequence]]] = field(
        default_factory=list
    )
    """`(seed, where its sequence goes)` of each request."""


class GroupSampling:
    """The sample requests of one group, gathered per loop tick (see the module docstring).
    `calls` counts the `sample` calls sent."""

    def __init__(self) -> None:
        self._pending: dict[tuple[object, ...], _Pending] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self.calls = 0

    async def sample(
        self,
        client: SamplingClient,
        prompt: tinker_types.ModelInput,
        params: tinker_types.SamplingParams,
        *,
        on_send: Callable[[], None],
        on_done: Callable[[], None],
    ) -> tinker_types.SampledSequence:
        """One sequence for `prompt`, sampled with `params` (seed included), alone or within a
        call shared with the group's other requests of this tick. `on_send`/`on_done` bracket
        each call actually sent (the runner's busy timer)."""
        key = _key(client, prompt, params)
        if key is None:  # a prompt with non-token chunks: not compared, sent alone
            return await self._send_alone(client, prompt, params, on_send, on_done)
        loop = asyncio.get_running_loop()
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending(client, prompt, params)
            loop.call_soon(self._flush, key, on_send, on_done)
        out: asyncio.Future[tinker_types.SampledSequence] = loop.create_future()
        pending.members.append((params.seed or 0, out))
        # A future per member: one cancelled (its group given up) leaves the others' alone.
        return await out

    async def _send_alone(
        self,
        client: SamplingClient,
        prompt: tinker_types.ModelInput,
        params: tinker_types.SamplingParams,
        on_send: Callable[[], None],
        on_done: Callable[[], None],
    ) -> tinker_types.SampledSequence:
        self.calls += 1
        on_send()
        try:
            response = await client.sample(prompt, 1, params)
        finally:
            on_done()
        return response.sequences[0]

    def _flush(
        self, key: tuple[object, ...], on_send: Callable[[], None], on_done: Callable[[], None]
    ) -> None:
        pending = self._pending.pop(key)
        task = asyncio.get_running_loop().create_task(self._send(pending, on_send, on_done))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(
        self, pending: _Pending, on_send: Callable[[], None], on_done: Callable[[], None]
    ) -> None:
        from cookbook.rl.rollouts import mix_seed

        members = sorted(pending.members, key=lambda m: m[0])
        params = pending.params
        if len(members) > 1:
            params = params.model_copy(update={"seed": mix_seed(*(seed for seed, _ in members))})
        try:
            self.calls += 1
            on_send()
            try:
                response = await pending.client.sample(pending.prompt, len(members), params)
            finally:
                on_done()
            sequences = response.sequences
            if len(sequences) != len(members):
                raise RuntimeError(
                    f"the sampler returned {len(sequences)} sequences for num_samples="
                    f"{len(members)}"
                )
        except Exception as e:
            for _, out in members:
                if not out.done():
                    out.set_exception(e)
            return
        except BaseException:  # cancelled (the loop is closing): so are the members' waits
            for _, out in members:
                out.cancel()
            raise
        for (_, out), sequence in zip(members, sequences, strict=True):
            if not out.done():
                out.set_result(sequence)


def _key(
    client: SamplingClient, prompt: tinker_types.ModelInput, params: tinker_types.SamplingParams
) -> tuple[object, ...] | None:
    """What two requests must share to go out as one call (the seed aside), or None when the
    prompt has chunks other than tokens."""
    try:
        tokens = tuple(prompt.to_ints())
    except ValueError:
        return None
    stop = params.stop
    stop_key = tuple(stop) if isinstance(stop, list) else stop
    return (
        id(client),
        tokens,
        params.max_tokens,
        params.temperature,
        params.top_k,
        params.top_p,
        stop_key,
    )


_GROUP: contextvars.ContextVar[GroupSampling | None] = contextvars.ContextVar(
    "cookbook_group_sampling", default=None
)


def current_group() -> GroupSampling | None:
    """The group whose rollout is running in this task (None outside one)."""
    return _GROUP.get()


def enter_group(group: GroupSampling) -> contextvars.Token[GroupSampling | None]:
    """Make `group` the current one for this task and the tasks it creates."""
    return _GROUP.set(group)


def leave_group(token: contextvars.Token[GroupSampling | None]) -> None:
    """Undo `enter_group`."""
    _GROUP.reset(token)
