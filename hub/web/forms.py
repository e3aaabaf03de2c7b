"""The parsed form of a page's POST, shared by every page module."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData

from hub.deps import refuse_text
from runtime import edge


async def form_data(request: Request) -> AsyncIterator[FormData]:
    # Parsed once: the CSRF check in `get_current_user` reads the same cached form.
    form = await request.form()
    try:
        refuse_text(edge.forbidden_in_form(form.multi_items()))
        yield form
    finally:
        await form.close()  # uploaded files are spooled to temporary files


Form = Annotated[FormData, Depends(form_data)]
