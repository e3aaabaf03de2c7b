"""DP engine: from (bounded data, contract, spec, cost) to noisy cells. The only OpenDP user."""

import opendp.prelude as dp

dp.enable_features("contrib")
