"""The hub's exception hierarchy; each error carries its stable code and HTTP status.

HubError                       root; `code` is machine-readable, messages name no data value
├── NotFound (404)             agreement_not_found, node_not_found, query_not_found,
│                              task_unknown (no open task of that node has the query id),
│                              organisation_not_found, user_not_found, token_not_found,
│                              oidc_provider_unknown, module_not_found
├── Unauthenticated (401)      unauthenticated: missing or unknown API token;
│                              token_expired, token_revoked, session_expired, login_failed
│                              (a locked account too), oidc_state_invalid, oidc_nonce_mismatch,
│                              oidc_token_invalid, oidc_token_expired, oidc_idp_error,
│                              oidc_provider_unreachable, oidc_provider_invalid;
│                              enrollment_token_invalid, node_signature_invalid,
│                              node_key_mismatch, message_stale, key_unchanged,
│                              key_retired
├── Forbidden (403)            forbidden (role or organisation), org_not_permitted,
│                              node_scope_forbidden, csrf_failed, password_change_required,
│                              no_role, oidc_no_roles, oidc_no_organisation,
│                              agreement_not_active, cost_over_cap, not_a_party,
│                              node_removed
├── Invalid (422)              invalid_request, dataset_not_allowed, measure_not_allowed,
│                              column_not_allowed, dim_not_allowed, too_many_dims,
│                              grid_not_allowed, unknown_level, unknown_column,
│                              column_not_numeric (against the nodes' contracts),
│                              node_not_registered, hub_mismatch, signature_invalid,
│                              signer_not_party, digest_mismatch, version_not_next,
│                              amends_mismatch, terms_mismatch, notice_invalid,
│                              enrollment_invalid, release_invalid, ttl_too_long,
│                              node_mismatch, role_unknown, scope_invalid, password_rejected,
│                              totp_invalid, module_not_allowed, module_not_shipped,
│                              coverage_invalid
├── Conflict (409)             organisation_exists, user_exists, node_exists,
│                              agreement_version_exists, already_signed,
│                              agreement_not_draft, agreement_not_proposed, agreement_revoked,
│                              replayed (a node-signed message seen before)
└── HubSetupError (500)        hub_not_initialised: the home folder lacks identity or key;
    │                          module_file_invalid: a shipped module file does not parse
    └── SchemaOutOfDate        schema_out_of_date: the database needs `sauti hub migrate`

The app maps every HubError to `{"error": {"code", "message"}}` in `hub.errors`, and the
framework's own refusals the same way: 413 `too_large` (any body over HUB_BODY_MAX_BYTES,
refused before it is read), 405, and 422 `invalid_request` (naming fields and the kind of
problem, e.g. `control_character`, never a value).
"""


class HubError(Exception):
    """Root of every error the hub raises on purpose."""

    status_code = 500
    default_code = "hub_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code


class NotFound(HubError):
    status_code = 404
    default_code = "not_found"


class Unauthenticated(HubError):
    status_code = 401
    default_code = "unauthenticated"


class Forbidden(HubError):
    status_code = 403
    default_code = "forbidden"


class Invalid(HubError):
    status_code = 422
    default_code = "invalid_request"


class Conflict(HubError):
    status_code = 409
    default_code = "conflict"


class HubSetupError(HubError):
    status_code = 500
    default_code = "hub_not_initialised"


class SchemaOutOfDate(HubSetupError):
    default_code = "schema_out_of_date"
