"""Content-Security-Policy values both apps send with HTML.

The pages of the web UIs set their own (stricter) policy; every other HTML answer gets
`DEFAULT_HTML_POLICY` from the edge middleware. A self-contained document (the printable
MoU, a fact sheet) keeps its styles inline, so it can be saved or printed as one file; its
policy allows exactly those style blocks, by hash, and nothing else inline.
"""

import base64
import hashlib
import re

DEFAULT_HTML_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none';"
    " base-uri 'none'"
)
_STYLE_BLOCK = re.compile(r"<style>(.*?)</style>", re.DOTALL)


def document_policy(html: str) -> str:
    """The policy of a self-contained document: its own `<style>` blocks (by hash), inline
    images and fonts (`data:`), no script, no form, no frame, no request anywhere."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() + "'"
        for block in _STYLE_BLOCK.findall(html)
    )
    styles = hashes or "'none'"
    return (
        f"default-src 'none'; style-src {styles}; img-src data:; font-src data:;"
        " form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    )
