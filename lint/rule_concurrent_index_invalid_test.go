package lint

import "testing"

func TestRuleConcurrentIndexInvalidRisk(t *testing.T) {
	runRuleCases(t, "concurrent-index-invalid-risk", []ruleCase{
		{name: "if not exists", sql: "-- +goose NO TRANSACTION\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email);", want: true},
		{name: "short lock_timeout", sql: "-- +goose NO TRANSACTION\nSET lock_timeout = '1s';\nCREATE INDEX CONCURRENTLY users_email ON users (email);", want: true},
		{name: "unique if not exists", sql: "-- +goose NO TRANSACTION\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email);", want: true},
		{name: "drop of another index does not help", sql: "-- +goose NO TRANSACTION\nDROP INDEX CONCURRENTLY IF EXISTS other;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email);", want: true},
		{name: "plain concurrent build", sql: "-- +goose NO TRANSACTION\nCREATE INDEX CONCURRENTLY users_email ON users (email);"},
		{name: "leftover dropped first", sql: "-- +goose NO TRANSACTION\nSET lock_timeout = '1s';\nDROP INDEX CONCURRENTLY IF EXISTS users_email;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email);"},
		{name: "lock_timeout reset before the build", sql: "-- +goose NO TRANSACTION\nSET lock_timeout = '1s';\nALTER TABLE users ADD COLUMN x int;\nRESET lock_timeout;\nCREATE INDEX CONCURRENTLY users_x ON users (x);"},
		{name: "non-concurrent if not exists", sql: "CREATE TABLE t (a int);\nCREATE INDEX IF NOT EXISTS t_a ON t (a);"},
	})
}
