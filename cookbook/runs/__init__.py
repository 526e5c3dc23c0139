"""What every run shares: its log directory, resolved config, metrics log, checkpoint index and
progress display (`run_dir`, `config_io`, `metrics`, `checkpoints`, `progress`, `files`); the
set-up every loop does the same way (`setup`: clients, `BuildContext`, starting weights,
checkpoint save and load, resume checks); and the config a command line or a Python call names
(`blueprints`: registered envs, datasets and evals, recommended settings, saved configs). RL, SFT
and eval runs all use these, so their outputs look alike and a crashed run resumes the same way
everywhere."""
