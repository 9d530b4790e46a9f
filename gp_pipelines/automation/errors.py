"""Errors the automation's steps raise about the documents they are given."""


class UnmatchedDocument(Exception):
    """A valid document that refers to something we never sent (e.g. a 945 for an unknown order), or that
    cannot apply to it (more shipped than was ordered): the file it came in is quarantined, nothing changes."""
