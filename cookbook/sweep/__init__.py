"""`cookbook sweep`: grids and random searches of training runs, each run a `cookbook rl|sft`
subprocess with its own log directory under the sweep directory (docs/sweeps.md).

    spec.py     the sweep syntax (`key=a,b`, `key=loguniform:LO:HI`, ...) and its expansion
    loops.py    what the sweep knows about `cookbook rl` and `cookbook sft` (keys, list keys)
    state.py    sweep.json and the lock that keeps two sweeps off one directory
    launch.py   local subprocesses (killed with the sweep) and Ray tasks
    runner.py   the scheduler: N runs at a time, resume after a kill
    cli.py      the command line
"""
