"""Pairwise preference RL for cookbook: a group of completions to one prompt is compared pair by
pair by a preference model, and each completion's reward comes from its wins and losses."""
