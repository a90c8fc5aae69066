"""The callable of test jobs whose code goes missing: tests delete it from this module
(``monkeypatch.delattr``), as a deploy does that removes a job's function."""


def vanishing_job(*args: object, **kwargs: object) -> None:
    """A job function that tests delete."""
