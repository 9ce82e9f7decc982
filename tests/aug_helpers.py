"""A user augmentation, referenced by dotted path from test recipes."""


def shout(text, rng, suffix="!"):
    return text.upper() + suffix


def boom(text, rng):
    raise RuntimeError("user augmentation crashed")
