"""A group's identical sample requests go out as one `sample(num_samples=k)` call, on the real
local backend (tiny model): one call per distinct prompt, each env its own sequence."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from tinker import types as tinker_types

from cookbook.backends.local.service import LocalServiceClient
from cookbook.backends.protocol import Future, SamplingClient
from cookbook.rl.rollouts import SamplingPolicy, do_batch_rollout, mix_seed
from cookbook.rl.serial_sampling import Gate, SerialSamplingClient
from cookbook.rl.types import (
    Action,
    Env,
    EnvGroupBuilder,
    Observation,
    StepResult,
    StopCondition,
    Trajectory,
)
from cookbook.tokenizers import Tokenizer


class CountingClient:
    """The real sampling client, with a record of the calls it was given."""

    def __init__(self, inner: SamplingClient) -> None:
        self.inner = inner
        self.calls: list[tuple[tuple[int, ...], int, int | None]] = []
        """`(prompt tokens, num_samples, seed)` of each `sample` call."""

    def sample(
        self,
        prompt: tinker_types.ModelInput,
        num_samples: int,
        sampling_params: tinker_types.SamplingParams,
        include_prompt_logprobs: bool = False,
        topk_prompt_logprobs: int = 0,
    ) -> Future[tinker_types.SampleResponse]:
        self.calls.append((tuple(prompt.to_ints()), num_samples, sampling_params.seed))
        return self.inner.sample(
            prompt, num_samples, sampling_params, include_prompt_logprobs, topk_prompt_logprobs
        )

    def compute_logprobs(self, prompt: tinker_types.ModelInput) -> Future[list[float | None]]:
        return self.inner.compute_logprobs(prompt)

    def get_tokenizer(self) -> Tokenizer:
        return self.inner.get_tokenizer()


class PromptEnv(Env):
    """One turn from a fixed prompt; remembers what it was given."""

    def __init__(self, prompt: list[int]) -> None:
        self.prompt = prompt
        self.action: list[int] = []

    async def initial_observation(self) -> tuple[Observation, StopCondition]:
        return tinker_types.ModelInput.from_ints(self.prompt), []

    async def step(self, action: Action) -> StepResult:
        self.action = list(action)
        return StepResult(
            reward=0.0,
            episode_done=True,
            next_observation=tinker_types.ModelInput.empty(),
            next_stop_condition=[],
        )


class PromptGroup(EnvGroupBuilder):
    def __init__(self, prompts: list[list[int]]) -> None:
        self.prompts = prompts
        self.envs: list[PromptEnv] = []

    async def make_envs(self) -> Sequence[Env]:
        self.envs = [PromptEnv(p) for p in self.prompts]
        return self.envs

    async def compute_group_rewards(
        self, trajectories_G: list[Trajectory], envs_G: Sequence[Env]
    ) -> list[tuple[float, dict[str, float]]]:
        return [(0.0, {}) for _ in trajectories_G]


@pytest.fixture(scope="module")
def sampler(tmp_path_factory: pytest.TempPathFactory) -> SamplingClient:
    service = LocalServiceClient(device="cpu", base_dir=tmp_path_factory.mktemp("ckpt"))
    trainer = service.create_lora_training_client("tiny", seed=0)
    return trainer.save_weights_and_get_sampling_client().result()


def _rollout(
    client: SamplingClient, builders: list[PromptGroup], timeout_s: float | None = 30.0
) -> list[list[tuple[list[int], list[float]]]]:
    import asyncio

    policy = SamplingPolicy(client, max_tokens=6, temperature=1.0)
    batch = asyncio.run(do_batch_rollout(builders, policy, 7, 0, step_timeout_s=timeout_s))
    assert batch.lost == 0, batch.error_messages
    return [
        [(t.transitions[0].ac_tokens, t.transitions[0].ac_logprobs) for t in g.trajectories_G]
        for g in batch.groups_P
    ]


@pytest.mark.parametrize("timeout_s", [30.0, None])
def test_identical_prompts_of_a_group_go_out_as_one_call(
    sampler: SamplingClient, timeout_s: float | None
) -> None:
    client = CountingClient(sampler)
    same, other = [5, 6, 7], [9, 9]
    builders = [PromptGroup([same, same, other, same]), PromptGroup([same, same])]
    out = _rollout(client, builders, timeout_s)
    # Per group: one call per distinct prompt, never one call across groups.
    assert sorted((p, n) for p, n, _ in client.calls) == sorted(
        [(tuple(other), 1), (tuple(same), 2), (tuple(same), 3)]
    )
    # Each env got a sequence of its own (distinct draws), with its logprobs.
    group0 = out[0]
    assert all(len(tokens) == len(lps) > 0 for tokens, lps in group0)
    assert len({tuple(tokens) + tuple(lps) for tokens, lps in group0}) == 4
    # The lone request kept its own seed: the env gets what an unshared sample gives it.
    assert builders[0].envs[2].action == group0[2][0]
    # Replayed, every env gets the same sequence again.
    again = _rollout(CountingClient(sampler), [PromptGroup(b.prompts) for b in builders], timeout_s)
    assert again == out


def test_the_shared_call_maps_sequences_back_in_seed_order(sampler: SamplingClient) -> None:
    client = CountingClient(sampler)
    out = _rollout(client, [PromptGroup([[3, 4]] * 3)])
    ((prompt, n, seed),) = client.calls
    # The same call made directly gives the envs' sequences, in the order of their seeds.
    params = tinker_types.SamplingParams(max_tokens=6, temperature=1.0, stop=[], seed=seed)
    direct = sampler.sample(tinker_types.ModelInput.from_ints(list(prompt)), n, params).result()
    # Env i's request seed (do_batch_rollout seed 7, group 0, env i, turn 0).
    seeds = [mix_seed(mix_seed(mix_seed(7, 0), i), 0) for i in range(3)]
    order = sorted(range(3), key=lambda i: seeds[i])
    assert [out[0][i][0] for i in order] == [s.tokens for s in direct.sequences]


def test_a_serial_client_samples_every_request_alone(sampler: SamplingClient) -> None:
    counted = CountingClient(sampler)
    _rollout(SerialSamplingClient(counted, Gate()), [PromptGroup([[5, 6]] * 3)])
    assert [n for _, n, _ in counted.calls] == [1, 1, 1]


def test_a_policy_outside_a_group_samples_alone(sampler: SamplingClient) -> None:
    import asyncio

    counted = CountingClient(sampler)
    policy = SamplingPolicy(counted, max_tokens=4, temperature=1.0)
    ob = tinker_types.ModelInput.from_ints([1, 2])

    async def both() -> None:
        await asyncio.gather(policy(ob, [], 1), policy(ob, [], 2))

    asyncio.run(both())
    assert [n for _, n, _ in counted.calls] == [1, 1]
