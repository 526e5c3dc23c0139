"""Tic-tac-toe for cookbook: the `tictactoe` env (textarena), the `tictactoe-demos` dataset and
the `tictactoe-vs-random` / `tictactoe-vs-optimal` evals. Registered from `plugin.py`; the
generic two-player textarena layer is in `arena/`."""
