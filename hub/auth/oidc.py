"""OpenID Connect login (authorization code + PKCE, state, nonce) and claim-to-role mapping.

authlib builds and checks the OAuth pieces (authorization URI, PKCE challenge, the
callback's state, the provider metadata); joserfc verifies the ID token's signature
against the provider's JWKS and its claims (iss, aud, exp, iat, nonce, azp). Discovery
documents and key sets are cached per issuer; an unknown key id triggers one re-fetch,
so a provider's key rotation needs no restart.
"""

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.errors import (
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.audit import service as audit
from hub.auth import sessions, users
from hub.auth.exceptions import OidcFailed, OidcProviderUnknown
from hub.auth.models import OidcLogin, Organisation, UserRow
from hub.auth.schemas import ROLES, RoleScope, SessionInfo
from hub.exceptions import Forbidden
from hub.settings import HubSettings, OidcProviderSettings

# A login must come back from the IdP within this long.
LOGIN_TTL_SECONDS = 600
METADATA_TTL_SECONDS = 3600
HTTP_TIMEOUT_SECONDS = 10.0
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def provider(settings: HubSettings, name: str) -> OidcProviderSettings:
    for p in settings.oidc_providers:
        if p.name == name:
            return p
    raise OidcProviderUnknown()


# --- discovery and keys ---


@dataclass
class _Cached:
    metadata: dict[str, Any]
    keys: KeySet
    fetched: float


_cache: dict[str, _Cached] = {}
_cache_lock = threading.Lock()


def _fetch_json(url: str) -> dict[str, Any]:
    try:
        response = httpx.get(url, timeout=HTTP_TIMEOUT_SECONDS)
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise OidcFailed(
            "oidc_provider_unreachable", "the identity provider's metadata could not be read"
        ) from exc
    if not isinstance(body, dict):
        raise OidcFailed("oidc_provider_unreachable", "the identity provider sent no JSON object")
    return body


def _load(p: OidcProviderSettings, *, refresh_keys: bool = False) -> _Cached:
    with _cache_lock:
        cached = _cache.get(p.issuer)
    fresh = cached is not None and time.monotonic() - cached.fetched < METADATA_TTL_SECONDS
    if cached is not None and fresh and not refresh_keys:
        return cached
    metadata = (
        cached.metadata
        if cached is not None and fresh
        else _fetch_json(p.issuer.rstrip("/") + "/.well-known/openid-configuration")
    )
    try:
        OpenIDProviderMetadata(metadata).validate()
    except ValueError as exc:
        raise OidcFailed(
            "oidc_provider_invalid", "the identity provider's discovery document is not valid"
        ) from exc
    if metadata.get("issuer") != p.issuer:
        raise OidcFailed(
            "oidc_provider_invalid", "the discovery document names another issuer than configured"
        )
    try:
        keys = KeySet.import_key_set(_fetch_json(str(metadata["jwks_uri"])))  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError) as exc:
        raise OidcFailed("oidc_provider_invalid", "the provider's key set is not valid") from exc
    loaded = _Cached(metadata=metadata, keys=keys, fetched=time.monotonic())
    with _cache_lock:
        _cache[p.issuer] = loaded
    return loaded


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


# --- the login ---


def safe_next(next_path: str | None) -> str:
    """Only a path on this hub: never an absolute or scheme-relative URL (open redirect)."""
    if not next_path or not next_path.startswith("/") or next_path.startswith("//"):
        return "/"
    if "\\" in next_path or any(ord(c) < 32 for c in next_path):
        return "/"
    return next_path


def start_login(
    *,
    session: Session,
    settings: HubSettings,
    provider_name: str,
    redirect_uri: str,
    next_path: str | None,
) -> tuple[str, str]:
    """The IdP authorization URL to redirect to, and the browser-binding cookie value."""
    p = provider(settings, provider_name)
    cached = _load(p)
    state = generate_token(43)
    nonce = generate_token(43)
    verifier = generate_token(64)
    browser = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    session.add(
        OidcLogin(
            state_hash=_sha(state),
            browser_hash=_sha(browser),
            provider=p.name,
            nonce=nonce,
            code_verifier=verifier,
            next_path=safe_next(next_path),
            created_at=now,
        )
    )
    session.commit()
    url = prepare_grant_uri(
        uri=cached.metadata["authorization_endpoint"],
        client_id=p.client_id,
        response_type="code",
        redirect_uri=redirect_uri,
        scope=" ".join(p.scopes),
        state=state,
        nonce=nonce,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
    )
    return str(url), browser


def _fail(session: Session, p_name: str, code: str, message: str) -> OidcFailed:
    audit.append(
        session=session,
        actor="anonymous",
        action="auth.login_failed",
        object=f"oidc:{p_name}",
        details={"method": f"oidc:{p_name}", "reason": code},
    )
    session.commit()
    return OidcFailed(code, message)


def finish_login(
    *,
    session: Session,
    settings: HubSettings,
    provider_name: str,
    redirect_uri: str,
    params: dict[str, str],
    browser: str | None,
) -> tuple[str, SessionInfo, str]:
    """Check the callback, redeem the code, verify the ID token, map claims, start a session.

    Returns the session cookie value, the session and the path to send the browser to.
    """
    p = provider(settings, provider_name)
    state = params.get("state", "")
    login = session.scalars(
        select(OidcLogin).where(OidcLogin.state_hash == _sha(state)).with_for_update()
    ).first()
    now = datetime.now(UTC)
    fresh = login is not None and login.used_at is None
    if login is not None and login.used_at is None:
        # Single use, whatever happens next: a state shown to anyone else is burnt.
        login.used_at = now
        session.commit()
    if (
        not state
        or login is None
        or login.provider != p.name
        or not fresh
        or login.created_at + timedelta(seconds=LOGIN_TTL_SECONDS) <= now
        or not browser
        or not secrets.compare_digest(login.browser_hash, _sha(browser))
    ):
        raise _fail(
            session,
            p.name,
            "oidc_state_invalid",
            "the sign-in state is unknown, used, expired or from another browser; start again",
        )
    if "error" in params:
        raise _fail(session, p.name, "oidc_idp_error", "the identity provider refused the sign-in")
    code = params.get("code")
    if not code:
        raise _fail(session, p.name, "oidc_idp_error", "the callback carries no code")
    cached = _load(p)
    tokens = _redeem(
        p, cached.metadata, code=code, verifier=login.code_verifier, redirect_uri=redirect_uri
    )
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise _fail(session, p.name, "oidc_token_invalid", "the provider returned no ID token")
    try:
        claims = _verify_id_token(p, cached, id_token, nonce=login.nonce)
    except OidcFailed as exc:
        raise _fail(session, p.name, exc.code, exc.message) from exc
    try:
        org_slug, wanted = map_claims(p, claims)
    except Forbidden as exc:
        audit.append(
            session=session,
            actor="anonymous",
            action="auth.login_failed",
            object=f"oidc:{p.name}:{claims.get('sub')}",
            details={"method": f"oidc:{p.name}", "reason": exc.code},
        )
        session.commit()
        raise
    row = _provision(session, p, claims, org_slug=org_slug, wanted=wanted)
    if row.disabled_at is not None:
        raise _fail(session, p.name, "login_failed", "this account is disabled")
    cookie, info = sessions.create_session(
        session=session, user_id=row.id, method=f"oidc:{p.name}", settings=settings
    )
    return cookie, info, login.next_path


def _redeem(
    p: OidcProviderSettings,
    metadata: dict[str, Any],
    *,
    code: str,
    verifier: str,
    redirect_uri: str,
) -> dict[str, Any]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
        "client_id": p.client_id,
    }
    auth = (p.client_id, p.client_secret.get_secret_value()) if p.client_secret else None
    try:
        response = httpx.post(
            str(metadata["token_endpoint"]),
            content=urlencode(form),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            auth=auth,
            timeout=HTTP_TIMEOUT_SECONDS,
        )
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise OidcFailed(
            "oidc_provider_unreachable", "the identity provider's token endpoint did not answer"
        ) from exc
    if response.status_code != 200 or not isinstance(body, dict):
        raise OidcFailed("oidc_idp_error", "the identity provider refused to redeem the code")
    return body


def _verify_id_token(
    p: OidcProviderSettings, cached: _Cached, id_token: str, *, nonce: str
) -> dict[str, Any]:
    try:
        try:
            token = jwt.decode(id_token, cached.keys, algorithms=ALGORITHMS)
        except JoseError as exc:
            if "kid" not in str(exc).lower() and "key" not in str(exc).lower():
                raise
            # Perhaps the provider rotated its keys since we cached them: fetch once more.
            token = jwt.decode(id_token, _load(p, refresh_keys=True).keys, algorithms=ALGORITHMS)
    except (JoseError, ValueError) as exc:
        raise OidcFailed(
            "oidc_token_invalid",
            "the ID token's signature does not verify with the provider's keys",
        ) from exc
    claims: dict[str, Any] = dict(token.claims)
    registry = JWTClaimsRegistry(
        leeway=p.clock_skew_seconds,
        iss={"essential": True, "value": p.issuer},
        aud={"essential": True, "value": p.client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError as exc:
        raise OidcFailed("oidc_token_expired", "the ID token has expired") from exc
    except (InvalidClaimError, MissingClaimError) as exc:
        claim = getattr(exc, "claim", "a claim")
        raise OidcFailed(
            "oidc_token_invalid", f"the ID token's {claim} claim is missing or wrong"
        ) from exc
    except JoseError as exc:
        raise OidcFailed("oidc_token_invalid", "the ID token's claims do not validate") from exc
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != p.client_id:
        raise OidcFailed("oidc_token_invalid", "the ID token's azp claim is missing or wrong")
    if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(
        claims["nonce"], nonce
    ):
        raise OidcFailed(
            "oidc_nonce_mismatch", "the ID token's nonce is not the one this sign-in sent"
        )
    return claims


# --- claims to accounts ---


def map_claims(p: OidcProviderSettings, claims: dict[str, Any]) -> tuple[str, list[RoleScope]]:
    """The organisation slug and roles the IdP's claims map to under this provider's rules."""
    org = p.organisation
    if p.organisation_claim is not None:
        value = claims.get(p.organisation_claim)
        org = p.organisation_map.get(str(value)) if value is not None else None
    if not org:
        raise Forbidden(
            "the identity provider's claims map to no organisation on this hub",
            code="oidc_no_organisation",
        )
    groups = claims.get(p.roles_claim, [])
    if isinstance(groups, str):
        groups = [groups]
    names: list[str] = list(p.default_roles)
    for group in groups if isinstance(groups, list) else []:
        names.extend(p.role_map.get(str(group), ()))
    wanted: list[RoleScope] = []
    for name in dict.fromkeys(names):
        role, _, node_id = name.partition(":")
        if role not in ROLES:
            continue  # a typo in the mapping grants nothing rather than something
        wanted.append(RoleScope.model_validate({"role": role, "node_id": node_id or None}))
    if not wanted:
        raise Forbidden(
            "the identity provider's groups map to no role on this hub", code="oidc_no_roles"
        )
    return org, wanted


def _provision(
    session: Session,
    p: OidcProviderSettings,
    claims: dict[str, Any],
    *,
    org_slug: str,
    wanted: list[RoleScope],
) -> UserRow:
    """The user linked to (provider, sub), created on first login; IdP roles follow the claims."""
    org = session.scalars(select(Organisation).where(Organisation.slug == org_slug)).first()
    if org is None:
        raise Forbidden(
            "the organisation this provider maps to is not registered", code="oidc_no_organisation"
        )
    sub = str(claims["sub"])
    row = session.scalars(
        select(UserRow).where(UserRow.oidc_provider == p.name, UserRow.oidc_subject == sub)
    ).first()
    actor = f"oidc:{p.name}"
    if row is None:
        preferred = str(claims.get(p.username_claim) or sub)
        username = f"{p.name}:{preferred}"
        if session.scalars(select(UserRow).where(UserRow.username == username)).first():
            username = f"{p.name}:{sub}"
        row = UserRow(
            username=username[:200],
            display_name=str(claims.get("name") or preferred)[:300],
            organisation_id=org.id,
            kind="person",
            failed_logins=0,
            oidc_provider=p.name,
            oidc_subject=sub,
            created_at=datetime.now(UTC),
        )
        session.add(row)
        session.flush()
        audit.append(
            session=session,
            actor=actor,
            action="user.created",
            object=f"user:{row.username}",
            details={"organisation": org.slug, "kind": "person", "provider": p.name},
        )
    elif row.organisation_id != org.id:
        # The IdP moved the person to another organisation: follow it, and say so.
        audit.append(
            session=session,
            actor=actor,
            action="user.organisation_changed",
            object=f"user:{row.username}",
            details={"organisation": org.slug},
        )
        row.organisation_id = org.id
    users.sync_grants(session=session, row=row, wanted=wanted, source=actor, actor=actor)
    session.flush()
    return row
