"""Tic-tac-toe for cookbook: the `tictactoe` env (textarena), the `tictactoe-demos` dataset and
the `tictactoe-vs-random` / `tictactoe-vs-optimal` evals. Registered from `plugin.py`; the game
itself is `tictactoe.py`, on the generic two-player layer of `cookbook-textarena`
(`cookbook_textarena`)."""
