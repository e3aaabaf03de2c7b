"""Refused calls: every 401/403 goes to the security log; attributable ones to the audit chain.

A refusal is written to the hash chain when it can be tied to an account or a credential
(an authenticated caller denied a route or another organisation's data, a steward acting
for another node, an expired or revoked token or session, a missing CSRF token). Anonymous
calls with no or unknown credentials go only to the `hub.security` log: anyone on the
network could otherwise grow the chain, and lock its head, at will. Failed logins and
lockouts are chained by the login code itself.
"""

import logging

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from hub.audit import service as audit
from hub.auth.schemas import User
from hub.exceptions import HubError

log = logging.getLogger("hub.security")

# Chained by the code that raised them (with the attempted user name), not here.
_ALREADY_AUDITED = frozenset(
    {
        "login_failed",
        "oidc_state_invalid",
        "oidc_nonce_mismatch",
        "oidc_token_invalid",
        "oidc_token_expired",
        "oidc_idp_error",
        "oidc_no_roles",
        "oidc_no_organisation",
    }
)


def record_refusal(
    *, request: Request, exc: HubError, sessions: sessionmaker[Session] | None
) -> None:
    user: User | None = getattr(request.state, "sauti_user", None)
    subject: str | None = getattr(exc, "subject", None)
    route = request.scope.get("route")
    template = getattr(route, "path", request.url.path)
    log.warning(
        "refused %s %s: %s (%s)",
        request.method,
        template,
        exc.code,
        f"user:{user.name}" if user else subject or "anonymous",
    )
    if sessions is None or exc.code in _ALREADY_AUDITED or (user is None and subject is None):
        return
    with sessions() as session:
        audit.append(
            session=session,
            actor=f"user:{user.name}" if user else "anonymous",
            action="auth.denied",
            object=subject or f"route:{request.method} {template}",
            details={
                "code": exc.code,
                "status": exc.status_code,
                "method": request.method,
                "route": template,
                "role": user.role if user else None,
                "organisation": user.organisation if user else None,
            },
        )
        session.commit()
