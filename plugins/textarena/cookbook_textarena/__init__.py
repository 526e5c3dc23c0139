"""Any textarena two-player game as cookbook envs, demonstrations and evals.

`game.py` is the contract a game implements (`TwoPlayerGame`) and the game in progress
(`GameSession`); `envs.py` the RL envs (vs an opponent, self-play); `players.py` the opponents;
`demos.py` the demonstration dataset; `evaluate.py` the evals; `builders.py` the chz configs a
game subclasses. See `cookbook_tictactoe/tictactoe.py` for a complete game in one file.
"""
