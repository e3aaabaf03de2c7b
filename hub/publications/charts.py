"""Bar charts with 95% interval whiskers as inline SVG (one small SVG per bar row).

Labels and numbers stay in the HTML around each bar, so the text is shaped by the page's
fonts (Devanagari, Bengali) and lands in the PDF's text layer; the SVG draws only shapes.
Suppressed cells get no bar: a hollow diamond (the legend's symbol) marks them; a cell
with no data (a node that did not answer) gets neither bar nor symbol.
"""

from dataclasses import dataclass

from markupsafe import Markup

WIDTH = 300
HEIGHT = 16
BAR = 10


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    low: float | None
    high: float | None
    text: str  # the formatted estimate and interval, or the suppression symbol's meaning
    suppressed: bool
    emphasis: bool = False


def _x(value: float, scale: float) -> float:
    return round(max(0.0, min(value / scale, 1.0)) * (WIDTH - 8), 2)


def suppressed_symbol(*, size: int = 10) -> Markup:
    half = size / 2
    points = f"{half},1 {size - 1},{half} {half},{size - 1} 1,{half}"
    # Only numbers are interpolated: nothing here comes from users.
    return Markup(  # noqa: S704
        f'<svg class="sym" width="{size}" height="{size}" viewBox="0 0 {size} {size}" '
        f'role="img" aria-hidden="true"><polygon points="{points}" fill="none" '
        'stroke="#b03a2e" stroke-width="1.5"/></svg>'
    )


def bar_svg(bar: Bar, *, scale: float) -> Markup:
    """One row's bar and whisker; `scale` is the value at the right edge (1.0 for shares)."""
    top = (HEIGHT - BAR) / 2
    parts = [
        f'<svg class="bar" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        'role="img" aria-hidden="true">',
        f'<line x1="0" y1="0" x2="0" y2="{HEIGHT}" stroke="#999" stroke-width="1"/>',
    ]
    if bar.suppressed:
        parts.append(f'<g transform="translate(4,{(HEIGHT - 10) / 2})">')
        parts.append(
            '<polygon points="5,1 9,5 5,9 1,5" fill="none" stroke="#b03a2e" stroke-width="1.5"/>'
        )
        parts.append("</g>")
    elif bar.value is not None:
        fill = "#1f5f8b" if bar.emphasis else "#5b9bd5"
        parts.append(
            f'<rect x="0" y="{top}" width="{_x(bar.value, scale)}" height="{BAR}" fill="{fill}"/>'
        )
        if bar.low is not None and bar.high is not None:
            lo, hi, mid = _x(bar.low, scale), _x(bar.high, scale), HEIGHT / 2
            parts += [
                f'<line x1="{lo}" y1="{mid}" x2="{hi}" y2="{mid}" stroke="#222" '
                'stroke-width="1.2"/>',
                f'<line x1="{lo}" y1="{mid - 4}" x2="{lo}" y2="{mid + 4}" stroke="#222" '
                'stroke-width="1.2"/>',
                f'<line x1="{hi}" y1="{mid - 4}" x2="{hi}" y2="{mid + 4}" stroke="#222" '
                'stroke-width="1.2"/>',
            ]
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - numbers and constants only
