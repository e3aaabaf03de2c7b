"""Node-side harmonisation: pinned shared modules and the steward's mappings onto them."""
