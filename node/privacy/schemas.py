"""What the DP engine returns: the noisy cells and how they were made."""

from typing import Literal

from pydantic import BaseModel, ConfigDict

from contracts.v1 import Cell


class ComputedRelease(BaseModel):
    model_config = ConfigDict(frozen=True)

    cells: tuple[Cell, ...]
    noise_scale: float
    mechanism: Literal["discrete_gaussian"] = "discrete_gaussian"
