"""Preference models: what compares two completions of one prompt (`types`), registered by plugins
through the `register_preference_models` hook."""
