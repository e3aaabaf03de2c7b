"""Root of the node's exception hierarchy; every refusal carries a stable machine-readable code.

NodeError                         code (HTTP status is mapped in node/api/errors.py only)
├── HomeError                     home_invalid: a node home is missing, broken or already exists
├── SchemaOutOfDate               schema_out_of_date: the database needs `sauti node migrate`
├── HubUnreachable                hub_unreachable: the steward asked for a fetch from the hub
├── Unauthenticated               unauthenticated: no, unknown or revoked steward token
│   ├── TokenExpired              token_expired: a steward token or login session past its end
│   └── LoginFailed               login_failed: user name, password or TOTP code wrong, or
│                                 the account locked (the same answer: names stay unknown)
├── PasswordChangeRequired        password_change_required: reset password not yet changed
├── PasswordRejected              password_rejected: too short, common, contains the name
├── TotpInvalid                   totp_invalid: wrong or replayed one-time code
├── StewardExists                 steward_exists
├── AccountUnknown                steward_unknown
├── DatasetError
│   ├── DatasetInvalid            dataset_invalid: an import does not satisfy its contract
│   ├── DatasetExists             dataset_exists
│   ├── UnknownDataset            unknown_dataset: no such dataset, contract or import version
│   ├── ContractInvalid           contract_invalid: a contract document that does not parse
│   ├── ContractConflict          contract_conflict: that contract version has another text
│   ├── FileUnreadable            file_unreadable: empty, wrong type, unknown encoding
│   ├── FileTooLarge              file_too_large: over NODE_IMPORT_MAX_BYTES
│   ├── CodebookInvalid           codebook_invalid: an XLSForm without a usable survey sheet,
│   │                             or a partner codebook that is no contract, Table Schema or form
│   └── ImportMappingInvalid      import_mapping_invalid: a mapping that does not fit its contract
├── PrivacyError
│   ├── UnknownColumn             unknown_column
│   ├── UnknownLevel              unknown_level
│   ├── ColumnNotQueryable        column_not_queryable (identifier, free text, unit key)
│   ├── DimNotCategorical         dim_not_categorical
│   ├── MeasureNotSupported       measure_not_supported
│   ├── CostCheckFailed           cost_check_failed: the measurement would cost more than allowed
│   ├── NoiseOutOfRange           noise_out_of_range: a rho too small for any usable noise scale
│   └── ColumnNotCollected        variable_not_collected: a contract column this survey lacks
├── AgreementError
│   ├── AgreementInvalid          agreement_invalid: digest, hub signature or party check failed
│   ├── AgreementUnknown          agreement_unknown
│   ├── AgreementSuspended        agreement_suspended
│   ├── AgreementRevoked          agreement_revoked
│   ├── AgreementExpired          agreement_expired
│   ├── DatasetNotInAgreement     dataset_not_in_agreement
│   ├── MeasureNotAllowed         measure_not_allowed
│   ├── ColumnNotAllowed          column_not_allowed
│   ├── DimNotAllowed             dim_not_allowed
│   ├── TooManyDims               too_many_dims
│   ├── GridNotAllowed            grid_not_allowed: candidates or edges not from a public grid
│   ├── CostOverCap               cost_over_cap
│   ├── AgreementNotYetValid      agreement_not_yet_valid
│   ├── AgreementSuperseded       agreement_superseded: a newer signed version is in use
│   ├── RhoBelowFloor             rho_below_floor: below the agreement's min_rho
│   ├── AnalystOrgNotPermitted    analyst_org_not_permitted
│   ├── DisseminationNotAllowed   dissemination_not_allowed
│   └── TermNotInContract         term_not_in_contract: a term names a column the contract lacks
├── LedgerError
│   ├── BudgetExhausted           budget_exhausted
│   └── QueryIdConflict           query_id_conflict
├── RequestError
│   ├── Unsigned                  unsigned: no or malformed signed body
│   ├── SignatureRejected         signature_invalid
│   ├── WrongNode                 wrong_node
│   ├── RequestExpired            request_expired
│   ├── ControlCharacters         invalid_request: a signed message with a control character
│   │                             (or NUL) in a text field; names the fields (runtime.edge)
│   ├── SecureNotAllowed          secure_not_allowed: the query may not be securely aggregated
│   ├── SecureSessionUnknown      secure_session_unknown: no offer of this node for that attempt
│   ├── RosterInvalid             roster_invalid: a secure roster that does not check out
│   ├── InvalidRequest            invalid_request: a signed payload that is not this route's
│   │                             model, or a request expiring before it is issued
│   ├── InvalidSpec               invalid_spec: a column filtered twice, a level named twice
│   ├── WrongRoute                wrong_route: signed for secure aggregation, sent plainly
│   ├── RhoMismatch               rho_mismatch: the request's rho is not its spec's
│   ├── QueryModeConflict         query_mode_conflict: a query id used in the other mode
│   └── ReleaseFailed             release_failed: a charged release could not be computed
├── WebError                      (node/web: the steward's browser pages)
│   ├── LoginRequired             login_required: no valid browser session (redirect to login)
│   ├── CsrfRejected              csrf_failed: a form without this session's CSRF token
│   └── FormInvalid               form_invalid: a missing or malformed form field
├── HarmonisationError            (node/harmonisation: shared modules and mappings)
│   ├── ModuleNotHeld             module_not_held: that module version is not fetched here
│   ├── ModuleInvalid             module_invalid: not signed by the pinned hub, or unparsable
│   ├── ModuleNotInAgreement      module_not_in_agreement
│   ├── MappingMissing            mapping_missing: no mapping onto that module version
│   ├── MappingInvalid            mapping_invalid: names the variable that does not fit
│   └── VariableNotCollected      variable_not_collected: names the variables not collected
└── SyncError                     (node/sync: enrollment and pull mode, CLI-side only)
    ├── EnrollmentFailed          enrollment_failed: the hub refused, or its answer did not verify
    ├── NotEnrolled               not_enrolled: no hub URL and key pinned for pull mode
    ├── HubNotReached             hub_unreachable: the hub did not answer
    └── KeyRotationFailed         key_rotation_failed: the hub refused the node's new key

Messages name columns and rules, never a data value, a level typed by an analyst or a count.
"""

from typing import ClassVar


class NodeError(Exception):
    """Root of every error the node raises on purpose."""

    code: ClassVar[str] = "node_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class HomeError(NodeError):
    code = "home_invalid"


class SchemaOutOfDate(NodeError):
    code = "schema_out_of_date"


class HubUnreachable(NodeError):
    """A fetch the steward asked for (agreements, shared modules) found no hub to answer."""

    code = "hub_unreachable"


class DatasetError(NodeError):
    code = "dataset_error"


class PrivacyError(NodeError):
    code = "privacy_error"


class AgreementError(NodeError):
    code = "agreement_error"


class LedgerError(NodeError):
    code = "ledger_error"


class RequestError(NodeError):
    code = "request_error"
