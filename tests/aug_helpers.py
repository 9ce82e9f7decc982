"""A user augmentation, referenced by dotted path from test recipes."""


def shout(text, rng, suffix="!"):
    return text.upper() + suffix
