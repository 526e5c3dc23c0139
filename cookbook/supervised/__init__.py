"""Supervised fine-tuning: the contracts (`types`), chat files to datums (`conversations`,
`datums`, `lengths`), datasets of fixed datums (`datasets`), the core's `jsonl` dataset (`jsonl`),
the held-out NLL eval (`nll_eval`) and the sft loop (`train`)."""
