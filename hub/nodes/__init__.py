"""The node registry: enrollment with one-time tokens, pinned keys, rotation, removal."""
