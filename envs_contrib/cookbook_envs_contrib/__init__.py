"""More cookbook envs, registered through the same hooks as the first-party plugins
(`cookbook_envs_contrib.plugin`):

- `games`: textarena two-player games by id on the `cookbook_textarena` layer (Connect Four,
  Nim, Kuhn poker), and `textarena_envs`, the builders that play any of them (`env.game=...`);
- `guess_number`: a multi-turn single-player env (guess a number from higher / lower feedback);
- `calculator`: a tool-use env (the policy calls a calculator, then answers).

Importing this package is light; textarena, torch and tinker load when a config is called.
"""
