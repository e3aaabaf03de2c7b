"""Benchmark: a failed login takes as long for an unknown name as for a known or locked one.

The answers are identical (tests check that); this measures the time, which must not tell
an attacker which user names exist. Hub and node, through their login services on SQLite,
interleaved in one run: an unknown name, a known name with a wrong password, and a locked
account (with the right password). Target: the slowest median within 1.25x the fastest.
"""

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from contracts import signing
from hub.auth import organisations, users
from hub.auth import sessions as auth_sessions
from hub.auth.schemas import OrganisationCreate, RoleScope, UserCreate
from hub.db import init_db, make_engine
from hub.exceptions import HubError
from hub.home import init_home as init_hub_home
from hub.settings import HubSettings
from node.auth import service as node_auth
from node.db import dispose_engines
from node.exceptions import NodeError
from node.home import init_home as init_node_home
from node.home import pin_hub
from node.settings import NodeSettings

PASSWORD = "a long enough benchmark passphrase"
ROUNDS = 31
LIMIT = 1.25


def _timed(attempt: Callable[[], None]) -> float:
    started = time.perf_counter()
    attempt()
    return (time.perf_counter() - started) * 1000


def hub_cases(work: Path) -> dict[str, Callable[[], None]]:
    init_hub_home(work / "hub", hub_id="bench-hub")
    # Locks after 3 failures; the timed attempts run under a limit they never reach, so the
    # known account stays unlocked and the locked one stays locked.
    settings = HubSettings(home=work / "hub", login_max_failures=3)
    timed = settings.model_copy(update={"login_max_failures": 1_000_000})
    sessions = init_db(make_engine(settings.effective_database_url))
    with sessions() as s:
        organisations.create_organisation(
            session=s,
            body=OrganisationCreate(slug="nso", name="NSO", kind="nso"),
            actor="bench",
        )
        for name in ("known", "locked"):
            users.create_user(
                session=s,
                body=UserCreate(
                    username=name, organisation="nso", roles=(RoleScope(role="analyst"),)
                ),
                actor="bench",
                settings=settings,
                password=PASSWORD,
            )

    def login(username: str, password: str, using: HubSettings = timed) -> Callable[[], None]:
        def attempt() -> None:
            with sessions() as s:
                try:
                    auth_sessions.login_password(
                        session=s,
                        username=username,
                        password=password,
                        totp=None,
                        settings=using,
                    )
                except HubError:
                    return

        return attempt

    for _ in range(settings.login_max_failures):
        login("locked", "wrong password here", settings)()
    return {
        "unknown name": login("nobody", "wrong password here"),
        "wrong password": login("known", "wrong password here"),
        "locked account": login("locked", PASSWORD),
    }


def node_cases(work: Path) -> dict[str, Callable[[], None]]:
    home = work / "node"
    init_node_home(home, name="Bench CSO", country="524")
    pin_hub(home, hub_id="bench-hub", public_jwk=signing.public_jwk(signing.generate_key()))
    settings = NodeSettings(home=home, login_max_failures=3)
    timed = settings.model_copy(update={"login_max_failures": 1_000_000})
    for name in ("known", "locked"):
        node_auth.create_account(settings=settings, username=name, password=PASSWORD)

    def login(username: str, password: str, using: NodeSettings = timed) -> Callable[[], None]:
        def attempt() -> None:
            try:
                node_auth.login(settings=using, username=username, password=password)
            except NodeError:
                return

        return attempt

    for _ in range(settings.login_max_failures):
        login("locked", "wrong password here", settings)()
    return {
        "unknown name": login("nobody", "wrong password here"),
        "wrong password": login("known", "wrong password here"),
        "locked account": login("locked", PASSWORD),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for side, cases in (("hub", hub_cases(work)), ("node", node_cases(work))):
            times: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(ROUNDS):  # interleaved, so a busy moment hits every case alike
                for name, attempt in cases.items():
                    times[name].append(_timed(attempt))
            medians = {name: statistics.median(values) for name, values in times.items()}
            for name, value in medians.items():
                print(f"{side:<5} failed login, {name:<15} median {value:7.1f} ms")
            ratio = max(medians.values()) / min(medians.values())
            verdict = "PASS" if ratio <= LIMIT else "FAIL"
            print(f"target {side}_login_timing_ratio: {ratio:.2f} (limit {LIMIT}) {verdict}")
        dispose_engines()


if __name__ == "__main__":
    main()
