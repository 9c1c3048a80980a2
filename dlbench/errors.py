"""Errors a user can cause. The CLI prints each as one line and exits with status 2."""


class DlbenchError(Exception):
    """A mistake in the input (option, name, file), reported without a traceback."""


class UnknownName(DlbenchError, KeyError):
    """A name that is not in a registry; the message lists the valid ones."""

    def __init__(self, kind: str, name: str, valid):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        super().__init__(f"unknown {kind} {name!r}; valid: {', '.join(self.valid)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class ResultsFileError(DlbenchError):
    """A file that is missing, not Parquet, not a dlbench result, damaged or too new."""


class RunStopped(Exception):
    """A run stopped before its end (Ctrl-C, a lost cluster): one line, and the exit status to give.

    Not a DlbenchError: nothing in the input was wrong. Finished units stay in the unit cache, so the
    same command resumes where this one stopped.
    """

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code
