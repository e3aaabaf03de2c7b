"""`sauti hub org|user|token ...`: organisations, accounts, roles and API tokens at the hub.

Run on the hub's own machine by its operator (the actor recorded is `cli`); secrets
(initial and reset passwords, tokens) are printed once, on stdout, and never stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hub.auth.schemas import ORG_KINDS, ROLES, OrganisationCreate, RoleScope, UserCreate
from sauti.cli_common import echo_json, fail
from sauti.hub_options import DEFAULT_HOME, Home

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from hub.settings import HubSettings

org_app = typer.Typer(no_args_is_help=True, help="Organisations (CSO, NSO/ministry, ...).")
user_app = typer.Typer(no_args_is_help=True, help="User accounts and their roles.")
token_app = typer.Typer(no_args_is_help=True, help="API tokens (shown once).")

Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ACTOR = "cli"


@contextmanager
def _session(home: Path) -> Iterator[tuple[Session, HubSettings]]:
    from hub.db import init_db, make_engine
    from hub.exceptions import HubError
    from hub.settings import HubSettings

    settings = HubSettings(home=home)
    engine = make_engine(settings.effective_database_url)
    try:
        with init_db(engine)() as session:
            yield session, settings
    except HubError as exc:
        fail(f"{exc.code}: {exc.message}")
    finally:
        engine.dispose()


def _roles(values: list[str]) -> tuple[RoleScope, ...]:
    """`analyst`, `auditor`, ... or `steward:<node_id>`."""
    scopes = []
    for value in values:
        role, _, node_id = value.partition(":")
        if role not in ROLES:
            fail(f"role_unknown: {role!r} is not one of {', '.join(ROLES)}")
        scopes.append(RoleScope.model_validate({"role": role, "node_id": node_id or None}))
    return tuple(scopes)


# --- organisations ---


@org_app.command("add")
def org_add(
    slug: Annotated[str, typer.Argument(help="Short stable name agreements use, e.g. knbs.")],
    name: Annotated[str, typer.Option("--name")],
    kind: Annotated[str, typer.Option("--kind", help="|".join(ORG_KINDS))],
    country: Annotated[str | None, typer.Option("--country", help="UN M49, e.g. 404")] = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Register an organisation."""
    from hub.auth import organisations as auth_organisations

    try:
        body = OrganisationCreate.model_validate(
            {"slug": slug, "name": name, "kind": kind, "country": country}
        )
    except ValueError:
        fail("invalid_request: slug is letters/digits/.-_, kind one of the list, country 3 digits")
    with _session(home) as (session, _):
        org = auth_organisations.create_organisation(session=session, body=body, actor=ACTOR)
    typer.echo(f"organisation {org.slug} ({org.kind}, {org.country or '-'})")


@org_app.command("list")
def org_list(home: Home = DEFAULT_HOME, as_json: Json = False) -> None:
    from hub.auth import organisations as auth_organisations

    with _session(home) as (session, _):
        orgs = auth_organisations.list_organisations(session=session)
    if as_json:
        echo_json([o.model_dump(mode="json") for o in orgs])
        return
    for o in orgs:
        typer.echo(f"{o.slug}\t{o.kind}\t{o.country or '-'}\t{o.name}")


# --- users ---


@user_app.command("add")
def user_add(  # noqa: PLR0917 - typer maps each parameter
    username: Annotated[str, typer.Argument()],
    org: Annotated[str, typer.Option("--org", help="The organisation's slug.")],
    role: Annotated[
        list[str] | None,
        typer.Option("--role", help="analyst|secretariat|auditor|admin|steward:<node_id>"),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    service_account: Annotated[
        bool, typer.Option("--service", help="A script's account: tokens only, no login.")
    ] = False,
    home: Home = DEFAULT_HOME,
) -> None:
    """Create an account; a person gets a one-time password (printed once) to change."""
    from hub.auth import users as auth_users

    try:
        body = UserCreate.model_validate(
            {
                "username": username,
                "display_name": name,
                "organisation": org,
                "kind": "service" if service_account else "person",
                "roles": [r.model_dump() for r in _roles(role or [])],
            }
        )
    except ValueError:
        fail("invalid_request: user names are letters, digits and . _ @ -")
    with _session(home) as (session, settings):
        created = auth_users.create_user(session=session, body=body, actor=ACTOR, settings=settings)
    typer.echo(f"user {created.user.username} in {created.user.organisation}", err=True)
    if created.initial_password:
        typer.echo("one-time password (change it at first login):", err=True)
        typer.echo(created.initial_password)


@user_app.command("list")
def user_list(
    org: Annotated[str | None, typer.Option("--org")] = None,
    home: Home = DEFAULT_HOME,
    as_json: Json = False,
) -> None:
    from hub.auth import users as auth_users

    with _session(home) as (session, _):
        users = auth_users.list_users(session=session, organisation=org)
    if as_json:
        echo_json([u.model_dump(mode="json") for u in users])
        return
    for u in users:
        roles = ",".join(f"{g.role}@{g.scope}" for g in u.roles) or "-"
        flags = [
            f
            for f, on in (
                ("disabled", u.disabled),
                ("locked", u.locked_until is not None),
                ("totp", u.totp_enabled),
                (f"sso:{u.oidc_provider}", u.oidc_provider is not None),
            )
            if on
        ]
        typer.echo(f"{u.username}\t{u.organisation}\t{u.kind}\t{roles}\t{' '.join(flags)}")


@user_app.command("grant")
def user_grant(
    username: Annotated[str, typer.Argument()],
    role: Annotated[str, typer.Argument(help="analyst|...|steward:<node_id>")],
    home: Home = DEFAULT_HOME,
) -> None:
    """Grant a role (logged)."""
    from hub.auth import users as auth_users

    (scope,) = _roles([role])
    with _session(home) as (session, _):
        auth_users.grant_role(
            session=session, username=username, role=scope.role, node_id=scope.node_id, actor=ACTOR
        )
    typer.echo(f"{username}: granted {role}")


@user_app.command("revoke")
def user_revoke(
    username: Annotated[str, typer.Argument()],
    role: Annotated[str, typer.Argument(help="analyst|...|steward:<node_id>")],
    home: Home = DEFAULT_HOME,
) -> None:
    """Take a role away (logged); tokens acting in it stop working at once."""
    from hub.auth import users as auth_users

    (scope,) = _roles([role])
    with _session(home) as (session, _):
        auth_users.revoke_role(
            session=session, username=username, role=scope.role, node_id=scope.node_id, actor=ACTOR
        )
    typer.echo(f"{username}: revoked {role}")


@user_app.command("reset-password")
def user_reset_password(username: str, home: Home = DEFAULT_HOME) -> None:
    """A one-time password (printed once); sessions end; the user changes it at login."""
    from hub.auth import users as auth_users

    with _session(home) as (session, settings):
        reset = auth_users.reset_password(
            session=session, username=username, actor=ACTOR, settings=settings
        )
    typer.echo(reset.temporary_password)


@user_app.command("unlock")
def user_unlock(username: str, home: Home = DEFAULT_HOME) -> None:
    """Clear a lockout after repeated failed logins."""
    from hub.auth import users as auth_users

    with _session(home) as (session, _):
        auth_users.unlock(session=session, username=username, actor=ACTOR)
    typer.echo(f"{username}: unlocked")


@user_app.command("disable")
def user_disable(username: str, home: Home = DEFAULT_HOME) -> None:
    """No more logins; sessions end and tokens stop at once."""
    from hub.auth import users as auth_users

    with _session(home) as (session, _):
        auth_users.set_disabled(session=session, username=username, disabled=True, actor=ACTOR)
    typer.echo(f"{username}: disabled")


@user_app.command("enable")
def user_enable(username: str, home: Home = DEFAULT_HOME) -> None:
    from hub.auth import users as auth_users

    with _session(home) as (session, _):
        auth_users.set_disabled(session=session, username=username, disabled=False, actor=ACTOR)
    typer.echo(f"{username}: enabled")


@user_app.command("totp-reset")
def user_totp_reset(username: str, home: Home = DEFAULT_HOME) -> None:
    """Turn TOTP off for a user who lost their device (they can set it up again)."""
    from hub.auth import users as auth_users

    with _session(home) as (session, _):
        auth_users.totp_reset(session=session, username=username, actor=ACTOR)
    typer.echo(f"{username}: TOTP off")


# --- tokens ---


@token_app.command("create")
def token_create(  # noqa: PLR0917 - typer maps each parameter
    role: Annotated[
        str, typer.Option("--role", help="admin|secretariat|analyst|auditor|steward:<node_id>")
    ],
    name: Annotated[
        str | None,
        typer.Option(
            "--name", help="What the token is for (default: the account's name; --org needs it)."
        ),
    ] = None,
    org: Annotated[
        str | None, typer.Option("--org", help="Service account of this organisation (legacy).")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="An existing account.")] = None,
    expires_days: Annotated[float | None, typer.Option("--expires-days", min=0.001)] = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Create an API token and print it once.

    `--user U --role R` issues a token for an existing account acting in a role it holds;
    `--org O --name N --role R` (as before) makes or reuses the service account N of O.
    """
    from hub.auth import tokens as auth_tokens

    if (user is None) == (org is None):
        fail("invalid_request: give either --user or --org")
    with _session(home) as (session, settings):
        if org is not None:
            if expires_days is not None:
                fail("invalid_request: --expires-days needs --user")
            if name is None:
                fail("invalid_request: --org needs --name (the service account)")
            typer.echo(
                auth_tokens.create_token(session=session, name=name, organisation=org, role=role)
            )
            return
        assert user is not None
        (scope,) = _roles([role])
        created = auth_tokens.issue_token(
            session=session,
            username=user,
            name=name or user,
            role=scope.role,
            node_id=scope.node_id,
            expires_in_days=expires_days,
            actor=ACTOR,
            settings=settings,
        )
    typer.echo(f"token {created.info.token_id} expires {created.info.expires_at}", err=True)
    typer.echo(created.token)


@token_app.command("list")
def token_list(
    user: Annotated[str | None, typer.Option("--user")] = None,
    home: Home = DEFAULT_HOME,
    as_json: Json = False,
) -> None:
    """Every token (never its secret): id, name, user, role, scope, expiry, revoked."""
    from hub.auth import tokens as auth_tokens

    with _session(home) as (session, _):
        tokens = auth_tokens.list_tokens(session=session, username=user)
    if as_json:
        echo_json([t.model_dump(mode="json") for t in tokens])
        return
    for t in tokens:
        state = "revoked" if t.revoked_at else f"expires {t.expires_at or 'never'}"
        typer.echo(f"{t.token_id}\t{t.name}\t{t.username or '-'}\t{t.role}\t{t.scope}\t{state}")


@token_app.command("revoke")
def token_revoke(token_id: int, home: Home = DEFAULT_HOME) -> None:
    """Revoke an API token at once."""
    from hub.auth import tokens as auth_tokens

    with _session(home) as (session, _):
        auth_tokens.revoke_token(session=session, token_id=token_id, actor=ACTOR)
    typer.echo(f"token {token_id} revoked")
