"""Hub storage on SQLite and PostgreSQL: tokens, node registry, agreements, audit chain."""

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from hub_support import SimNode, make_terms
from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts import signing
from hub.agreements import service as agreements
from hub.audit import service as audit
from hub.auth.models import ApiToken
from hub.auth.tokens import authenticate, create_token
from hub.db import init_db, make_engine
from hub.exceptions import HubError
from hub.home import HubIdentity, load_identity, load_key
from hub.nodes import service as federation
from hub.settings import HubSettings


def register(session: Session, node: SimNode) -> None:
    federation.register_node(session=session, actor="test", **node.registration())


def nodes(hub_home: HubIdentity) -> list[SimNode]:
    return [
        SimNode(node_id="ke-a", country="404", hub_key=hub_home.public_jwk),
        SimNode(node_id="np-a", country="524", hub_key=hub_home.public_jwk),
    ]


def test_home_identity_and_key(tmp_path: Path, hub_home: HubIdentity) -> None:
    home = tmp_path / "hub"
    assert load_identity(home) == hub_home
    assert signing.key_id(load_key(home)) == hub_home.kid
    assert (home / "keys" / "hub.jwk.json").stat().st_mode & 0o777 == 0o600


def test_tokens_are_stored_hashed(session: Session) -> None:
    token = create_token(session=session, name="ana", organisation="nso", role="analyst")
    stored = session.scalars(select(ApiToken)).one()
    assert token not in stored.token_hash
    user = authenticate(session=session, token=token)
    assert (user.name, user.organisation, user.role) == ("ana", "nso", "analyst")
    with pytest.raises(HubError) as info:
        authenticate(session=session, token=token + "x")
    assert info.value.code == "unauthenticated"
    with pytest.raises(HubError):
        create_token(session=session, name="x", organisation="y", role="king")


def test_node_key_is_pinned(session: Session, hub_home: HubIdentity) -> None:
    node = nodes(hub_home)[0]
    register(session, node)
    register(session, node)  # same key again: fine
    impostor = SimNode(node_id="ke-a", country="404", hub_key=hub_home.public_jwk)
    with pytest.raises(HubError) as info:
        register(session, impostor)
    assert info.value.code == "node_exists"
    assert [n.node_id for n in federation.list_nodes(session=session)] == ["ke-a"]


def test_agreement_lifecycle(
    session: Session, hub_settings: HubSettings, hub_home: HubIdentity
) -> None:
    key = load_key(hub_settings.home)
    ke, np_ = nodes(hub_home)
    terms = make_terms([ke, np_])
    with pytest.raises(HubError) as info:
        agreements.create_agreement(
            session=session, terms=terms, identity=hub_home, key=key, actor="t"
        )
    assert info.value.code == "node_not_registered"
    register(session, ke)
    register(session, np_)
    read = agreements.create_agreement(
        session=session, terms=terms, identity=hub_home, key=key, actor="t"
    )
    assert read.status == "proposed"
    assert read.agreement.digest == signing.digest(terms)
    assert read.missing_signers == ("ke-a", "np-a")
    hub_sig = read.agreement.signatures[0]
    assert hub_sig.signer == "test-hub"
    signing.verify(hub_sig.jws, signing.load_public_key(hub_home.public_jwk))
    with pytest.raises(HubError) as info:
        agreements.active_version(session=session, agreement_id=terms.agreement_id)
    assert info.value.code == "agreement_not_active"

    # A signature by the wrong key, or over another digest, is refused.
    forged = np_.sign_agreement(terms.agreement_id, 1, read.agreement.digest)
    with pytest.raises(HubError) as info:
        agreements.add_signature(
            session=session, signature=forged.model_copy(update={"signer": "ke-a"}), actor="t"
        )
    assert info.value.code == "signature_invalid"
    with pytest.raises(HubError) as info:
        agreements.add_signature(
            session=session, signature=ke.sign_agreement(terms.agreement_id, 1, "0" * 64), actor="t"
        )
    assert info.value.code == "digest_mismatch"

    agreements.add_signature(
        session=session,
        signature=ke.sign_agreement(terms.agreement_id, 1, read.agreement.digest),
        actor="t",
    )
    done = agreements.add_signature(session=session, signature=forged, actor="t")
    assert done.status == "active"
    active_terms, digest = agreements.active_version(
        session=session, agreement_id=terms.agreement_id
    )
    assert (active_terms, digest) == (terms, read.agreement.digest)

    with pytest.raises(HubError) as info:
        agreements.create_agreement(
            session=session, terms=terms, identity=hub_home, key=key, actor="t"
        )
    assert info.value.code == "agreement_version_exists"
    v2 = make_terms([ke, np_], version=2, min_cell_size=20)
    agreements.create_agreement(session=session, terms=v2, identity=hub_home, key=key, actor="t")
    latest = agreements.get_agreement(session=session, agreement_id=terms.agreement_id)
    assert (latest.agreement.terms.version, latest.status) == (2, "proposed")
    # Until v2 is signed by everyone, queries run under v1.
    assert (
        agreements.active_version(session=session, agreement_id=terms.agreement_id)[0].version == 1
    )
    assert [r.agreement.terms.version for r in agreements.list_agreements(session=session)] == [2]

    assert audit.verify_chain(session=session) is None
    actions = [e.action for e in audit.entries(session=session)]
    assert actions.count("agreement.created") == 2
    assert actions.count("agreement.signed") == 2
    assert actions.count("node.registered") == 2


def test_status_follows_validity_window(hub_home: HubIdentity) -> None:
    terms = make_terms([("ke-a", "404")])
    signers = ["test-hub", "ke-a"]
    assert agreements.status_of(terms, signers)[0] == "active"
    # The signed text's boundary: in force until just before `valid_until`, as at the node.
    last = terms.valid_until - timedelta(microseconds=1)
    assert agreements.status_of(terms, signers, at=last)[0] == "active"
    assert agreements.status_of(terms, signers, at=terms.valid_until)[0] == "expired"
    assert (
        agreements.status_of(terms, signers, at=terms.valid_from - timedelta(seconds=1))[0]
        == "not_yet_valid"
    )
    assert agreements.status_of(terms, ["ke-a"])[0] == "proposed"


def test_audit_chain_detects_edits_and_survives_concurrent_writers(
    hub_settings: HubSettings,
) -> None:
    engine = make_engine(hub_settings.effective_database_url)
    sessions = init_db(engine)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(5):
                with sessions() as s:
                    audit.append(session=s, actor=f"w{n}", action="test", object=f"o{i}")
                    s.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with sessions() as s:
        chain = audit.entries(session=s)
        assert [e.seq for e in chain] == list(range(1, 21))
        assert audit.verify_chain(session=s) is None
        from hub.audit.models import AuditRow  # noqa: PLC0415

        row = s.get(AuditRow, 7)
        assert row is not None
        row.actor = "someone else"
        s.commit()
        assert audit.verify_chain(session=s) == 7
    engine.dispose()
