"""`sauti query`: ask a hub a question and print the combined answer."""


def query() -> None:
    raise NotImplementedError
