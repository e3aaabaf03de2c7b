import pytest

from contracts import signing
from node.exceptions import HomeError
from node.home import init_home, load_identity, pin_hub
from runtime import keys


def test_init_creates_identity_and_private_key(tmp_path):
    identity = init_home(tmp_path / "h", name="Dalit Women's Forum", country="524")
    assert identity.node_id == "dalit-women-s-forum"
    assert load_identity(tmp_path / "h") == identity
    key_file = tmp_path / "h" / "keys" / "node.jwk.json"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert signing.key_id(keys.load_private_key(key_file)) == identity.kid


def test_init_refuses_to_overwrite(tmp_path):
    init_home(tmp_path, name="A", country="524")
    with pytest.raises(HomeError):
        init_home(tmp_path, name="B", country="524")


def test_pin_hub(tmp_path):
    init_home(tmp_path, name="A", country="404", node_id="a1")
    hub = signing.generate_key()
    pin_hub(tmp_path, hub_id="hub", public_jwk=signing.public_jwk(hub))
    identity = load_identity(tmp_path)
    assert identity.hub_id == "hub"
    assert identity.hub_public_jwk == signing.public_jwk(hub)
    with pytest.raises(HomeError):
        pin_hub(tmp_path, hub_id="hub", public_jwk={"kty": "OKP"})


def test_pin_hub_url(tmp_path):
    init_home(tmp_path, name="A", country="404", node_id="a1")
    jwk = signing.public_jwk(signing.generate_key())
    pin_hub(tmp_path, hub_id="hub", public_jwk=jwk, url="https://hub.example.org/")
    assert load_identity(tmp_path).hub_url == "https://hub.example.org"
    # Re-pinning the same hub without a URL keeps it; another hub clears it.
    pin_hub(tmp_path, hub_id="hub", public_jwk=jwk)
    assert load_identity(tmp_path).hub_url == "https://hub.example.org"
    pin_hub(tmp_path, hub_id="other", public_jwk=jwk)
    assert load_identity(tmp_path).hub_url is None
    with pytest.raises(HomeError, match="hub URL"):
        pin_hub(tmp_path, hub_id="hub", public_jwk=jwk, url="ftp://x")
