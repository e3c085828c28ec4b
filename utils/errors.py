"""Errors shared across packages (kept here, below scene/ and utils/, so neither imports the other
for them)."""


class DatasetError(Exception):
    """A problem with the user's data. The message names the file and says what to do."""
