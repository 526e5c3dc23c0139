"""`cookbook play --env NAME [--against CHECKPOINT] [--seed N] [KEY=VALUE ...]`: play the
policy's side of an env yourself, to see what the policy sees before training on it.

    cookbook play --env arithmetic                         # answer a problem
    cookbook play --env tictactoe                          # a training root: vs the optimal
                                                           # player, from a random opening
    cookbook play --env tictactoe env.opening_plies=0 env.opponent=random   # a whole game
    cookbook play --env tictactoe env.self_play=true group_size=2 --against runs/rl-tictactoe

One episode of the first group of the env's first training batch (`--seed` picks another), built
as `cookbook rl --env NAME` builds it (the same `KEY=VALUE` settings, the env's recommended ones
underneath) but with groups of `group_size=1` unless you set it. For each turn it prints the
observation as the model would read it (the decoded prompt tokens; later turns show only what
was added), then reads one line: your reply, sent as the tokens the model would have sampled (the
text, then the turn's first stop token). After each step it prints the reward, the step's
metrics and transcript text; at the end each env's total and the group's metrics.

A game with several seats in one group (a self-play game, `group_size` = its seats) has you in
the first env; `--against CHECKPOINT` (a checkpoint or a run directory) samples the other seats
from that policy, and without it you play every seat in turn. An env whose opponent is one of its
own options (tic-tac-toe's `env.opponent`) plays it itself. `/quit` or end of input stops.

Imported for `--help`: nothing heavy at module level.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TextIO

from cookbook.errors import UserError
from cookbook.rl.types import Env

if TYPE_CHECKING:
    from cookbook.backends.protocol import ServiceClient, TrainingClient
    from cookbook.build_context import BuildContext
    from cookbook.cli import CommandLine
    from cookbook.rl.rollouts import SampledTokens, TokenPolicy
    from cookbook.rl.train import Config
    from cookbook.rl.types import Observation, StepResult, StopCondition, Trajectory

QUIT = "/quit"


class StopPlaying(Exception):
    """The player quit (`/quit`) or the input ended."""


def run(line: CommandLine) -> int:
    """Run `cookbook play` as `line` asks; returns the exit status (0 when the episode ended,
    1 when the player stopped first). Mistakes raise `UserError`."""
    if line.help:
        print(
            line.help_text + "\n\n" + (__doc__ or "").split("\n\n", 1)[1].split("\n\nImported")[0]
        )
        return 0
    if line.name is None:
        raise UserError(
            "cookbook play: name an env: cookbook play --env NAME (`cookbook list envs` shows them)"
        )
    from cookbook.runs.blueprints import rl_config

    overrides = list(line.overrides)
    if not any(arg.partition("=")[0].strip() == "group_size" for arg in overrides):
        overrides.append("group_size=1")  # one episode to play, unless the game needs seats
    config = rl_config(line.name, [*overrides, "warm_start=None"], label="cookbook play")
    label = line.name.rsplit(":", 1)[-1]
    try:
        return asyncio.run(play(config, label, seed=line.seed, against=line.against))
    except StopPlaying as e:
        print(f"\nstopped: {e}")
        return 1


async def play(
    config: Config,
    label: str,
    *,
    seed: int = 0,
    against: str | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Play one episode of `config.env` (group 0 of training batch 0, built with `seed`) on
    `stdin`/`stdout`; `against` is the checkpoint whose policy plays the group's other envs."""
    from cookbook.rl.rollouts import SamplingPolicy, mix_seed, rollout_env

    out = stdout or sys.stdout
    state = None if against is None else _resolve(against)
    # Blocking set-up (the model, a tokenizer) off the event loop: the SDK warns about its
    # synchronous calls on a running loop.
    ctx, service, training_client = await asyncio.to_thread(_context, config, seed, state)
    train, _ = config.env(ctx)
    if len(train) == 0:
        raise UserError(f"env {label} has no training batches to play")
    group = train.get_batch(0)[0]
    envs = list(await group.make_envs())
    if against is not None and len(envs) < 2:
        raise UserError(
            f"--against plays the other seats of a game, but env {label}'s groups hold one env "
            f"here; its opponent is one of its own options (cookbook describe env {label}), or "
            "set the option that puts every seat in one group and group_size to the seats"
        )
    bot = None
    if state is not None and service is not None:
        from cookbook.runs.setup import checkpoint_training_client

        if training_client is None:
            training_client = await asyncio.to_thread(
                checkpoint_training_client, service, state, config.seed
            )
        client = await training_client.save_weights_and_get_sampling_client()
        bot = SamplingPolicy(client, config.max_tokens, config.temperature)
    lines = _LineReader(stdin or sys.stdin)
    human = HumanPolicy(ctx, lines, out, seats=len(envs) if bot is None else 1)
    seats = len(envs)
    print(
        f"{label}: you play the policy's side"
        + (f" of a group of {seats} envs" if seats > 1 else "")
        + f". Type each reply on one line; {QUIT} stops.",
        file=out,
    )
    players: list[tuple[Env, TokenPolicy]] = []
    for i, env in enumerate(envs):
        policy: TokenPolicy = _SeatPolicy(human, i)
        if i > 0 and bot is not None:
            policy = _Announced(bot, i, ctx, out)
        mine = isinstance(policy, _SeatPolicy)
        players.append((_Narrated(env, i, seats, mine, out), policy))
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [
                tg.create_task(rollout_env(env, policy, mix_seed(seed, i), None, 1000))
                for i, (env, policy) in enumerate(players)
            ]
        trajectories_G: list[Trajectory] = [t.result() for t in tasks]
        finals = await group.compute_group_rewards(trajectories_G, envs)
    except BaseExceptionGroup as failed:  # one seat's failure cancels the others
        raise _explained(_first_error(failed), label) from failed
    except Exception as e:
        raise _explained(e, label) from e
    print("\nepisode over", file=out)
    for i, (trajectory, (final, metrics)) in enumerate(zip(trajectories_G, finals, strict=True)):
        steps = trajectory.total_step_reward
        seat = f"env {i}: " if seats > 1 else ""
        extra = f"; group metrics: {_pairs(metrics)}" if metrics else ""
        print(
            f"  {seat}total reward {steps + final:g} (steps {steps:g} + group {final:g}){extra}",
            file=out,
        )
    return 0


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf of `group` that is not a cancellation (the cause of the others)."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        error = stack.pop(0)
        if isinstance(error, BaseExceptionGroup):
            stack[:0] = list(error.exceptions)
        else:
            leaves.append(error)
    return next((e for e in leaves if not isinstance(e, asyncio.CancelledError)), leaves[0])


def _explained(error: BaseException, label: str) -> BaseException:
    """The player stopping, a `UserError` and anything not an `Exception` pass as they are;
    whatever else the env raised becomes one line naming where (`--debug`: the traceback)."""
    if isinstance(error, StopPlaying | UserError) or not isinstance(error, Exception):
        return error
    from cookbook.testing.report import describe_error

    return UserError(f"env {label} raised {describe_error(error)}; --debug shows the traceback")


def _context(
    config: Config, seed: int, against: str | None
) -> tuple[BuildContext, ServiceClient | None, TrainingClient | None]:
    """The build context for `config`'s model (groups of `config.group_size`, one per batch),
    the service when a model is needed, and the training client the context was built with: on
    the weights of checkpoint `against` (resolved) when given, else the base model's. For the
    tiny model none is made (its tokenizer is built in): an `--against` checkpoint is loaded
    only once the env has shown it has seats to fill."""
    from cookbook.build_context import BuildContext
    from cookbook.model_names import is_tiny_model
    from cookbook.runs.setup import build_context, make_service, weights_training_client

    if is_tiny_model(config.model_name):
        from cookbook.tokenizers import ByteTokenizer

        ctx = BuildContext.for_model(config.model_name, ByteTokenizer(), seed=seed)
        ctx = replace(ctx, group_size=config.group_size, groups_per_batch=1)
        if against is None:
            return ctx, None, None
        return ctx, make_service(config.backend, config.device, config.base_url), None
    service = make_service(config.backend, config.device, config.base_url)
    training_client = weights_training_client(
        service, config.model_name, config.lora_rank, config.seed, against
    )
    ctx = build_context(
        config.model_name,
        training_client,
        seed=seed,
        group_size=config.group_size,
        groups_per_batch=1,
    )
    return ctx, service, training_client


def _resolve(against: str) -> str:
    from cookbook.runs.checkpoints import resolve_checkpoint

    try:
        return resolve_checkpoint(against)
    except UserError as e:
        raise UserError(f"--against: {e}") from e


class _LineReader:
    """Lines of a text stream, read on a daemon thread so the event loop never blocks on the
    terminal (and an unanswered prompt never keeps the process alive)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.queue: asyncio.Queue[str | None] | None = None
        self.interactive = stream.isatty()

    async def readline(self) -> str | None:
        """The next line without its newline, or None at the end of input."""
        if self.queue is None:
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[str | None] = asyncio.Queue()
            self.queue = queue

            def pump() -> None:
                try:
                    for line in self.stream:
                        loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\r\n"))
                    loop.call_soon_threadsafe(queue.put_nowait, None)
                except RuntimeError:  # the game is over and its event loop closed
                    return

            threading.Thread(target=pump, name="cookbook-play-stdin", daemon=True).start()
        return await self.queue.get()


@dataclass
class _Turn:
    """What a player was shown last: the observation's tokens."""

    shown: list[int]


class HumanPolicy:
    """A `TokenPolicy` that shows the observation and reads the reply from the terminal. Turns
    are served one at a time (several seats take turns at the one keyboard)."""

    def __init__(self, ctx: BuildContext, lines: _LineReader, out: TextIO, seats: int = 1) -> None:
        self.ctx = ctx
        self.lines = lines
        self.out = out
        self.seats = seats
        self.lock = asyncio.Lock()
        self.last: dict[int, list[int]] = {}
        """Per seat, the tokens already on screen (observation and reply)."""

    async def __call__(self, ob: Observation, stop: StopCondition, seed: int) -> SampledTokens:
        return await self.reply(ob, stop, seat=0)

    async def reply(self, ob: Observation, stop: StopCondition, seat: int) -> SampledTokens:
        """Show `ob` (what is new since this seat's last turn) and read one reply."""
        from cookbook.rl.rollouts import SampledTokens

        async with self.lock:
            tokens = list(ob.to_ints())
            seen = self.last.get(seat, [])
            new = tokens[len(seen) :] if seen and tokens[: len(seen)] == seen else tokens
            title = "observation" if new is tokens else "observation, continued"
            if self.seats > 1:
                title += f" (env {seat})"
            print(f"\n--- {title} ---\n{self.ctx.tokenizer.decode(new)}\n---", file=self.out)
            print("your reply> ", end="", file=self.out, flush=True)
            text = await self.lines.readline()
            if not self.lines.interactive:  # a terminal echoes what was typed; a pipe does not
                print(text if text is not None else "", file=self.out)
            if text is None:
                raise StopPlaying("the input ended before the episode did")
            if text.strip() == QUIT:
                raise StopPlaying(QUIT)
            action = self._tokens(text, stop)
            self.last[seat] = tokens + action
            return SampledTokens(tokens=action, logprobs=[0.0] * len(action))

    def _tokens(self, text: str, stop: StopCondition) -> list[int]:
        """`text` as the model would have sampled it: its tokens, then the turn's first stop."""
        encode = self.ctx.tokenizer.encode
        if not stop:
            return encode(text)
        first = stop[0]
        if isinstance(first, int):
            return [*encode(text), first]
        return encode(text + first)


class _Announced:
    """The `--against` policy for seat `seat`, printing what it replied."""

    def __init__(self, policy: TokenPolicy, seat: int, ctx: BuildContext, out: TextIO) -> None:
        self.policy = policy
        self.seat = seat
        self.ctx = ctx
        self.out = out

    async def __call__(self, ob: Observation, stop: StopCondition, seed: int) -> SampledTokens:
        sampled = await self.policy(ob, stop, seed)
        reply = self.ctx.renderer.parse_response(sampled.tokens)[0]["content"]
        print(f"\n[env {self.seat}, the --against policy, replied: {reply!r}]", file=self.out)
        return sampled


class _SeatPolicy:
    """The human policy answering for seat `seat` (hot seat: you play every env in turn)."""

    def __init__(self, human: HumanPolicy, seat: int) -> None:
        self.human = human
        self.seat = seat

    async def __call__(self, ob: Observation, stop: StopCondition, seed: int) -> SampledTokens:
        return await self.human.reply(ob, stop, self.seat)


class _Narrated(Env):
    """An env that prints each step's outcome for the seats a person plays."""

    def __init__(self, env: Env, seat: int, seats: int, mine: bool, out: TextIO) -> None:
        self.env = env
        self.seat = seat
        self.seats = seats
        self.mine = mine
        self.out = out

    async def initial_observation(self) -> tuple[Observation, StopCondition]:
        return await self.env.initial_observation()

    async def step(self, action: list[int]) -> StepResult:
        result = await self.env.step(action)
        if self.mine:
            where = f"env {self.seat}: " if self.seats > 1 else ""
            done = ", episode over" if result.episode_done else ""
            parts = [f"{where}reward {result.reward:g}{done}"]
            if result.metrics:
                parts.append(f"metrics {_pairs(result.metrics)}")
            if result.logs:
                parts.append("; ".join(f"{k}: {v}" for k, v in result.logs.items()))
            print("  " + " | ".join(parts), file=self.out)
        return result


def _pairs(values: dict[str, float]) -> str:
    return " ".join(f"{k}={v:g}" for k, v in values.items())
