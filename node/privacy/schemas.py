"""What the DP engine returns: the noisy cells and how they were made."""

from pydantic import BaseModel, ConfigDict

from contracts.v1 import Cell, Component
from contracts.v1.release import Mechanism


class ComputedRelease(BaseModel):
    model_config = ConfigDict(frozen=True)

    cells: tuple[Cell, ...]
    noise_scale: float
    mechanism: Mechanism = "discrete_gaussian"
    group_by: tuple[str, ...] = ()
    components: tuple[Component, ...] = ()
    epsilon: float | None = None
    delta: float | None = None
    weighted: bool = False
    grid: tuple[float, ...] | None = None
    bounds: tuple[float, float] | None = None
    integer: bool = False
