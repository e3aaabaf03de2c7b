"""Agreements (MoUs) at the hub: drafts signed by the secretariat and every node."""
