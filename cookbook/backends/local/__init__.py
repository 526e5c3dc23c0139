"""The `local` backend: the tinker client API run in-process on PyTorch.

Entry point: `cookbook.backends.local.service.LocalServiceClient` (or
`cookbook.backends.make_service_client("local")`). Importing this package is cheap; its modules
import torch.

Layout, one concern per file:

- `service.py`: `LocalServiceClient`, makes training and sampling clients.
- `training.py`: `LocalTrainingClient` (forward, forward_backward, optim_step, checkpoints).
- `sampling.py`: `LocalSamplingClient`: concurrent requests join one running generation.
- `generation.py`: continuous batching (`DecodeEngine`), the token sampler, prompt scoring;
  `kv_cache.py` its static cache (`SlotCache`); `cuda_graphs.py` replays decode steps on CUDA.
- `losses.py`, `batch.py`: the tinker losses, and datums to padded tensors (with validation).
- `models.py`: the model interface; `tiny_model.py` and `hf_model.py` implement it (the
  built-in model and Hugging Face directories); `factory.py` picks the family for a name and
  builds it.
- `checkpoints.py`: atomic save and load of weights and optimizer state.
- `worker.py`: the one-thread-per-client executor and the futures it returns.
- `random_hf.py`: random-weight Llama/Qwen2 checkpoints built offline (tests, benchmarks).
"""
