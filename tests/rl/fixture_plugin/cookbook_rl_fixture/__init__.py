"""Test fixture plugin for the RL runner: `fixture-letters` (a scripted env with fault knobs),
`fixture-warm` (the same env with a warm-start dataset), evals `fixture-echo` and
`fixture-broken-eval`, and the dataset `fixture-sft`."""
