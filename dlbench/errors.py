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
