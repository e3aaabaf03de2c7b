"""`sauti demo`: three synthetic CSO nodes and a hub on localhost."""


def demo() -> None:
    raise NotImplementedError
