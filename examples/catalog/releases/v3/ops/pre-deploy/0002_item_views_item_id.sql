-- no-transaction
-- CREATE INDEX CONCURRENTLY cannot run in a transaction: the directive above makes Tandem
-- run this file statement by statement, as tandem lint assumes. Rerunnable: an INVALID
-- leftover of a failed build is dropped first.
DROP INDEX CONCURRENTLY IF EXISTS item_views_item_id;
CREATE INDEX CONCURRENTLY item_views_item_id ON item_views (item_id);
