"""What test jobs hold that tests change under them: a callable whose code goes missing
(tests delete it from this module with ``monkeypatch.delattr``, as a deploy does that
removes a job's function) and one that stays, and a mutable object to pass as an argument."""


def vanishing_job(*args: object, **kwargs: object) -> None:
    """A job function that tests delete."""


def steady_job(*args: object, **kwargs: object) -> None:
    """A job function that stays, beside one that goes."""


class Label:
    """A mutable object that hashes by identity: a dict key a job's caller may change."""

    def __init__(self, text: str) -> None:
        self.text = text
