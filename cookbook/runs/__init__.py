"""What every training run shares: its log directory, resolved config, metrics log, checkpoint
index and progress display. RL, SFT and eval runs all use these, so their outputs look alike
and a crashed run resumes the same way everywhere."""
