"""Names of the operator-set values kept in the `settings` table (they override the
environment's defaults)."""

DAILY_BUDGET = "daily_budget_usd"
FRAGMENT_COST_LIMIT = "fragment_cost_limit_usd"
QUALITY_THRESHOLDS = "quality_thresholds"
QUALITY_WEIGHTS = "quality_weights"
REFERENCE_MODEL = "quality_reference_model"
MIN_VERIFIED = "quality_min_verified_fragments"
