"""The steward's own API on the node: governs the node even when the hub is down."""

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from node.api.deps import SettingsDep, StewardDep
from node.ledger import service as ledger
from node.ledger.schemas import BudgetLine

router = APIRouter(prefix="/v1/steward", tags=["steward"])


@router.get("/budget", response_model=list[BudgetLine])
async def budget(settings: SettingsDep, _steward: StewardDep) -> list[BudgetLine]:
    """Privacy budget per agreement: spent, remaining, queries."""
    return await run_in_threadpool(ledger.budget_report, home=settings.home, settings=settings)
