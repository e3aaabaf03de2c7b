"""`sauti node steward ...`: the node's own steward accounts, managed on the node's machine.

Whoever can run commands in the node's home is its operator, so these need no login:
they are how a CSO creates its first steward and recovers a locked-out one, hub or no hub.
"""

from typing import Annotated

import typer

from sauti.cli_common import echo_json, fail
from sauti.node_options import DEFAULT_HOME, Home, Json, settings_for

app = typer.Typer(no_args_is_help=True, help="Steward accounts (password login, lockout, TOTP).")


@app.command("add")
def add(
    username: Annotated[str, typer.Argument()],
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Create a steward account; its one-time password is printed once, to change at login."""
    from node.auth import service as auth
    from node.exceptions import NodeError

    try:
        account, initial = auth.create_account(
            settings=settings_for(home), username=username, display_name=name
        )
    except NodeError as exc:
        fail(f"{exc.code}: {exc.message}")
    typer.echo(f"steward {account.username} created; one-time password:", err=True)
    typer.echo(initial)


@app.command("list")
def list_accounts(home: Home = DEFAULT_HOME, as_json: Json = False) -> None:
    from node.auth import service as auth

    accounts = auth.list_accounts(settings=settings_for(home))
    if as_json:
        echo_json([a.model_dump(mode="json") for a in accounts])
        return
    for a in accounts:
        flags = [
            f
            for f, on in (
                ("disabled", a.disabled),
                ("locked", a.locked_until is not None),
                ("totp", a.totp_enabled),
                ("must-change-password", a.must_change_password),
            )
            if on
        ]
        typer.echo(f"{a.username}\t{a.display_name}\t{' '.join(flags)}")


def _run(action: str, username: str, home: Home, *, disabled: bool | None = None) -> None:
    from node.auth import service as auth
    from node.exceptions import NodeError

    settings = settings_for(home)
    try:
        if action == "unlock":
            auth.unlock(settings=settings, username=username)
        elif action == "totp-reset":
            auth.totp_reset(settings=settings, username=username)
        else:
            assert disabled is not None
            auth.set_disabled(settings=settings, username=username, disabled=disabled)
    except NodeError as exc:
        fail(f"{exc.code}: {exc.message}")
    typer.echo(f"{username}: {action} done")


@app.command("reset-password")
def reset_password(username: str, home: Home = DEFAULT_HOME) -> None:
    """A one-time password (printed once); sessions end; change it at the next login."""
    from node.auth import service as auth
    from node.exceptions import NodeError

    try:
        typer.echo(auth.reset_password(settings=settings_for(home), username=username))
    except NodeError as exc:
        fail(f"{exc.code}: {exc.message}")


@app.command("unlock")
def unlock(username: str, home: Home = DEFAULT_HOME) -> None:
    """Clear a lockout after repeated failed logins."""
    _run("unlock", username, home)


@app.command("disable")
def disable(username: str, home: Home = DEFAULT_HOME) -> None:
    """No more logins; the steward's sessions end at once."""
    _run("disable", username, home, disabled=True)


@app.command("enable")
def enable(username: str, home: Home = DEFAULT_HOME) -> None:
    _run("enable", username, home, disabled=False)


@app.command("totp-setup")
def totp_setup(username: str, home: Home = DEFAULT_HOME) -> None:
    """Show a TOTP secret for the steward's app, then ask for a code to switch TOTP on."""
    from node.auth import service as auth
    from node.exceptions import NodeError

    settings = settings_for(home)
    try:
        setup = auth.totp_begin(settings=settings, username=username, issuer="Sauti node")
        typer.echo(f"secret: {setup.secret}\nURI: {setup.uri}")
        code = typer.prompt("code from the app")
        auth.totp_confirm(settings=settings, username=username, code=code.strip())
    except NodeError as exc:
        fail(f"{exc.code}: {exc.message}")
    typer.echo(f"{username}: TOTP on")


@app.command("totp-reset")
def totp_reset(username: str, home: Home = DEFAULT_HOME) -> None:
    """Turn TOTP off for a steward who lost their device."""
    _run("totp-reset", username, home)
