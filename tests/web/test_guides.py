"""The role guides and quick cards: every page in every language, fully translated, with
links that resolve, naming only buttons and fields the pages still show, with the pictures
the journeys took, and PDFs whose Devanagari and Bengali really print."""

import io
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader

sys.path.insert(0, str(Path(__file__).parents[1] / "hub"))

from hub_support import Hub, SimNode, hub_home, make_hub

from hub.home import HubIdentity
from hub.settings import HubSettings
from hub.web import guides
from hub.web.i18n import CATALOGUES as HUB_CATALOGUES
from hub.web.i18n import LANGUAGES
from node.db import dispose_engines
from node.web import router as node_router
from node.web.i18n import CATALOGUES as NODE_CATALOGUES
from runtime.catalogue import Catalogues
from tests.web.node_web_support import WebClient, steward_node, web_client

__all__ = ["hub_home", "make_hub"]  # fixtures, found by name

ROOT = Path(__file__).resolve().parents[2]
HUB_HELP = ROOT / "hub" / "web" / "templates" / "help"
NODE_HELP = ROOT / "node" / "web" / "templates" / "help"
HUB_GUIDES = ("analyst", "secretariat", "auditor")
CARD_ROLES = guides.CARD_ROLES
UI = re.compile(r'\bui\("((?:[^"\\]|\\.)+)"\)')
PICTURE = re.compile(r'\bpicture\("([a-z0-9-]+)"')
HREF = re.compile(r'href="([^"]+)"')
ID = re.compile(r'\bid="([^"]+)"')
# A guide's own sentence shown in English on another language's page is untranslated;
# short words ("ρ", "SDMX") may rightly stay the same.
LONG_ENOUGH = 25


def _page_ids(catalogues: Catalogues) -> set[str]:
    """Every msgid a page (not a guide) shows."""
    ids: set[str] = set()
    for message in catalogues.extract():
        if message.id and any("help/" not in loc for loc, _line in message.locations):
            ids.add(message.id if isinstance(message.id, str) else message.id[0])
    return ids


def _guide_ids(catalogues: Catalogues) -> set[str]:
    ids: set[str] = set()
    for message in catalogues.extract():
        if message.id and any("help/" in loc for loc, _line in message.locations):
            ids.add(message.id if isinstance(message.id, str) else message.id[0])
    return ids


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture
def hub_settings(tmp_path: Path, hub_home: HubIdentity) -> HubSettings:
    return HubSettings(
        home=tmp_path / "hub",
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        session_cookie_secure=False,
    )


@pytest.fixture
def hub(make_hub: Callable[[list[SimNode]], Hub]) -> Hub:
    return make_hub([])


@pytest.fixture
def node_client(tmp_path: Path) -> Iterator[WebClient]:
    node = steward_node(tmp_path / "node", f"sqlite:///{tmp_path}/node.sqlite")
    with web_client(node.client.app) as client:
        yield client
    dispose_engines()


def _untranslated(html: str, english: set[str]) -> list[str]:
    text = _text(html)
    return sorted(m for m in english if len(m) >= LONG_ENOUGH and "%(" not in m and m in text)


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_every_hub_guide_page_renders_translated(hub: Hub, language: str) -> None:
    english = _guide_ids(HUB_CATALOGUES)
    for path in ["/help", *(f"/help/{role}" for role in HUB_GUIDES)]:
        page = hub.client.get(path, headers={"Accept-Language": language})
        assert page.status_code == 200, (path, page.text[:300])
        assert f'<html lang="{language}">' in page.text
        assert page.headers["content-language"] == language
        if language != "en":
            assert _untranslated(page.text, english) == [], (language, path)


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_the_steward_guide_renders_translated_at_the_node(
    node_client: WebClient, language: str
) -> None:
    page = node_client.get("/steward/help", headers={"Accept-Language": language})
    assert page.status_code == 200, page.text[:300]
    assert f'<html lang="{language}">' in page.text
    assert 'class="ui"' in page.text  # the buttons it names keep their emphasis
    if language != "en":
        assert _untranslated(page.text, _guide_ids(NODE_CATALOGUES)) == [], language


def test_the_guides_are_public_and_a_signed_in_steward_keeps_the_menu(
    node_client: WebClient,
) -> None:
    anonymous = node_client.get("/steward/help")
    assert anonymous.status_code == 200
    assert 'aria-label="Main menu"' not in anonymous.text
    assert node_client.login().status_code == 303
    signed_in = node_client.get("/steward/help")
    assert 'aria-label="Main menu"' in signed_in.text
    assert 'href="/steward/help" aria-current="page"' in signed_in.text


def test_every_hub_guide_link_resolves(hub: Hub) -> None:
    for path in ["/help", *(f"/help/{role}" for role in HUB_GUIDES)]:
        html = hub.client.get(path).text
        anchors = set(ID.findall(html))
        for href in set(HREF.findall(html)):
            if href.startswith("#"):
                assert href[1:] in anchors, (path, href)
            elif href.startswith("/") and not href.startswith("/static/"):
                response = hub.client.get(href.replace("&amp;", "&"))
                # Pages behind a login answer with the login page or a refusal, never 404.
                assert response.status_code in (200, 303, 401, 403), (path, href)
            elif href.startswith("/static/"):
                assert hub.client.get(href).status_code == 200, (path, href)


def test_every_node_guide_link_resolves(node_client: WebClient) -> None:
    html = node_client.get("/steward/help").text
    anchors = set(ID.findall(html))
    for href in set(HREF.findall(html)):
        if href.startswith("#"):
            assert href[1:] in anchors, href
        elif href.startswith("/"):
            assert node_client.get(href).status_code in (200, 303), href


@pytest.mark.parametrize(
    ("folder", "catalogues"), [(HUB_HELP, HUB_CATALOGUES), (NODE_HELP, NODE_CATALOGUES)]
)
def test_guides_name_only_buttons_and_fields_the_pages_show(
    folder: Path, catalogues: Catalogues
) -> None:
    shown = _page_ids(catalogues)
    named = {m for path in folder.glob("*.html") for m in UI.findall(path.read_text())}
    assert named, "the guides name no button at all"
    assert sorted(named - shown) == [], "a guide names a page element that no longer exists"


def _pictures(folder: Path) -> set[str]:
    return {name for path in folder.glob("*.html") for name in PICTURE.findall(path.read_text())}


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_the_screenshot_set_is_complete_in_every_language(language: str) -> None:
    wanted = {guides.GUIDES_DIR / language / f"{name}.jpg" for name in _pictures(HUB_HELP)} | {
        node_router.GUIDE_SHOTS / language / f"{name}.jpg" for name in _pictures(NODE_HELP)
    }
    assert wanted
    missing = sorted(str(p.relative_to(ROOT)) for p in wanted if not p.is_file())
    assert missing == [], "run: make guide-shots"


def _ink(pdf: bytes, tmp_path: Path) -> list[int]:
    """Dark pixels on each page of `pdf`, rendered by poppler (tofu boxes are few and thin)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "doc.pdf"
    source.write_bytes(pdf)
    subprocess.run(
        ["/usr/bin/pdftoppm", "-r", "40", "-png", str(source), str(tmp_path / "p")], check=True
    )
    return [
        sum(Image.open(p).convert("L").histogram()[:200]) for p in sorted(tmp_path.glob("p-*.png"))
    ]


@pytest.mark.parametrize(
    ("language", "font"), [("ne", "NotoSansDevanagari"), ("bn", "NotoSansBengali")]
)
def test_guides_and_cards_print_devanagari_and_bengali(
    hub: Hub, tmp_path: Path, language: str, font: str, caplog: pytest.LogCaptureFixture
) -> None:
    if not Path("/usr/bin/pdftoppm").exists():
        pytest.skip("poppler-utils is not installed (make system-deps)")
    cookies = {"Accept-Language": language}
    for url in [
        "/help/analyst/guide.pdf",
        "/help/cards/steward.pdf?paper=a5",
        "/help/cards/auditor.pdf?paper=a4",
    ]:
        response = hub.client.get(url, headers=cookies)
        assert response.status_code == 200, url
        assert response.headers["content-type"] == "application/pdf"
        reader = PdfReader(io.BytesIO(response.content))
        fonts = {
            str(f["/BaseFont"])
            for page in reader.pages
            for f in (page["/Resources"].get("/Font") or {}).values()  # type: ignore[attr-defined]
            for f in [f.get_object()]
        }
        assert any(font in name.replace("-", "") for name in fonts), (url, fonts)
        if "cards" in url:
            assert len(reader.pages) == 1, f"{url}: a quick card is one page"
        ink = _ink(response.content, tmp_path / url.strip("/").replace("/", "-").split("?")[0])
        assert min(ink) > 500, (url, ink)
    # WeasyPrint warns for every character no font could draw (an empty box on paper).
    assert not [r for r in caplog.records if ".notdef" in r.getMessage()]


def test_a_card_for_an_unknown_role_or_paper_is_refused(hub: Hub) -> None:
    assert hub.client.get("/help/cards/nobody.pdf").status_code == 422
    assert hub.client.get("/help/cards/analyst.pdf?paper=letter").status_code == 422
    assert hub.client.get("/help/nobody").status_code in (404, 422)
