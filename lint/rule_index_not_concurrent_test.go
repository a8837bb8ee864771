package lint

import "testing"

func TestRuleIndexNotConcurrent(t *testing.T) {
	runRuleCases(t, "index-not-concurrent", []ruleCase{
		{name: "create index on existing table", sql: `CREATE INDEX users_email ON users (email);`, want: true},
		{name: "create unique index", sql: `CREATE UNIQUE INDEX ON users (email);`, want: true},
		{name: "drop index", sql: `DROP INDEX users_email;`, want: true},
		{name: "reindex table", sql: `REINDEX TABLE users;`, want: true},
		{name: "reindex index before pg12", sql: `REINDEX INDEX users_email;`, pg: 11, want: true},
		{name: "table from an earlier file", sql: "CREATE TABLE users (id int);" + fileSep + "CREATE INDEX ON users (id);", want: true},
		{name: "partitioned table", sql: "CREATE TABLE ev (at date) PARTITION BY RANGE (at);" + fileSep + "CREATE INDEX ev_at ON ev (at);", want: true},
		{name: "on only a partitioned table", sql: "CREATE TABLE ev (at date) PARTITION BY RANGE (at);" + fileSep + "CREATE INDEX ev_at ON ONLY ev (at);"},
		{name: "concurrently", sql: "-- +goose NO TRANSACTION\nCREATE INDEX CONCURRENTLY users_email ON users (email);"},
		{name: "table created in the same file", sql: "CREATE TABLE users (id int, email text);\nCREATE INDEX ON users (email);"},
		{name: "drop concurrently", sql: "-- +goose NO TRANSACTION\nDROP INDEX CONCURRENTLY users_email;"},
		{name: "reindex concurrently", sql: "-- +goose NO TRANSACTION\nREINDEX INDEX CONCURRENTLY users_email;"},
		{name: "drop index of a table created in the file", sql: "CREATE TABLE t (id int);\nCREATE INDEX t_id ON t (id);\nDROP INDEX t_id;"},
	})
}
