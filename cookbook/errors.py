"""User-facing errors. The CLI prints these as one line (with the fix) and exits non-zero;
`--debug` shows the traceback. Anything else reaching the CLI is a bug and keeps its traceback."""


class UserError(Exception):
    """A mistake the user can fix: bad input, unknown name, missing file. The message is shown
    as is, so say what is wrong and how to fix it, in one line."""
