-- 0006: per-rule routing options. A new table rather than a new column: `spin up`
-- runs every migration file at each start, and SQLite's ADD COLUMN cannot be repeated.
-- Idempotent; never edit once applied.

-- Whether the caller's and the system's default models follow this rule's own
-- fallbacks (NULL: the `fallback_to_default` variable decides).
CREATE TABLE IF NOT EXISTS llm_routing_rule_options (
    rule_id              TEXT PRIMARY KEY REFERENCES llm_routing_rules (id) ON DELETE CASCADE,
    fallback_to_default  INTEGER CHECK (fallback_to_default IN (0, 1))
);
