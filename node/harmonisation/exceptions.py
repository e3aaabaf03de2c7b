"""Errors of modules and mappings at the node (see the tree in `node.exceptions`).

Messages name modules, variables and columns, never a data value or a count.
"""

from node.exceptions import NodeError


class HarmonisationError(NodeError):
    code = "harmonisation_error"


class ModuleNotHeld(HarmonisationError):
    """The node has not fetched (or added) that module version."""

    code = "module_not_held"


class ModuleInvalid(HarmonisationError):
    """A module document that does not verify with the pinned hub key, or does not parse."""

    code = "module_invalid"


class ModuleNotInAgreement(HarmonisationError):
    code = "module_not_in_agreement"


class MappingMissing(HarmonisationError):
    code = "mapping_missing"


class MappingInvalid(HarmonisationError):
    """A mapping that does not fit its module or its dataset; the message names the variable."""

    code = "mapping_invalid"


class VariableNotCollected(HarmonisationError):
    """A queried variable is marked not collected in this node's mapping."""

    code = "variable_not_collected"
