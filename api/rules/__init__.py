"""Pure rules the handlers apply: plans, quotas, rate limits, media fields, ids, signing,
client IP."""
