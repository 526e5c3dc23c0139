"""`cookbook serve`: a Tinker-compatible HTTP server over the local backend.

Point the real `tinker` SDK (and any program written for it, tinker-cookbook's loops included)
at it with `base_url=http://HOST:PORT` or `TINKER_BASE_URL`, and training and sampling run on
this machine. Layout: `cli.py` (the command), `app.py` (routes, on aiohttp), `state.py`
(sessions, runs, samplers, futures, checkpoint paths), `wire.py` (the protobuf bodies).
Importing this package is cheap: aiohttp, torch and tinker load with the command.

Verified against the tinker SDK versions in `SDK_VERSIONS` (tests/serve runs the real SDK).
"""

SDK_VERSIONS = ("0.38.0",)
"""`tinker` SDK versions this server was tested against."""
