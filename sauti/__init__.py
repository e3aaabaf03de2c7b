"""The `sauti` command line and the demo: thin wrappers over the node and hub packages."""
