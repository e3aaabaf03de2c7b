"""Register nodes (pinning their key) and look them up."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts import signing
from contracts.errors import KeyInvalid
from hub.audit import service as audit
from hub.federation.exceptions import NodeExists, NodeKeyInvalid, NodeNotFound
from hub.federation.models import Node
from hub.federation.schemas import NodeRead


def register_node(
    *,
    session: Session,
    node_id: str,
    name: str,
    country: str,
    url: str,
    public_jwk: dict[str, Any],
    actor: str = "system",
) -> NodeRead:
    """Pin the node's key. Re-registering the same key updates name/URL; another key is refused."""
    try:
        key = signing.load_public_key(public_jwk)
    except KeyInvalid as exc:
        raise NodeKeyInvalid() from exc
    kid = signing.key_id(key)
    url = url.rstrip("/")
    node = session.get(Node, node_id)
    if node is not None and node.kid != kid:
        raise NodeExists()
    if node is None:
        node = Node(
            node_id=node_id,
            name=name,
            country=country,
            url=url,
            public_jwk=signing.public_jwk(key),
            kid=kid,
            registered_at=datetime.now(UTC),
        )
        session.add(node)
    else:
        node.name, node.country, node.url = name, country, url
    session.flush()
    audit.append(
        session=session,
        actor=actor,
        action="node.registered",
        object=f"node:{node_id}",
        details={"kid": kid, "country": country},
    )
    session.commit()
    return to_read(node)


def list_nodes(*, session: Session) -> list[NodeRead]:
    return [to_read(n) for n in session.scalars(select(Node).order_by(Node.node_id))]


def get_node(*, session: Session, node_id: str) -> NodeRead:
    node = session.get(Node, node_id)
    if node is None:
        raise NodeNotFound()
    return to_read(node)


def to_read(node: Node) -> NodeRead:
    return NodeRead(
        node_id=node.node_id,
        name=node.name,
        country=node.country,
        url=node.url,
        kid=node.kid,
        public_jwk=node.public_jwk,
        registered_at=node.registered_at,
    )
