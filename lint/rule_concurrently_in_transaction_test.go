package lint

import "testing"

func TestRuleConcurrentlyInTransaction(t *testing.T) {
	runRuleCases(t, "concurrently-in-transaction", []ruleCase{
		{name: "file transaction", sql: `CREATE INDEX CONCURRENTLY users_email ON users (email);`, want: true},
		{name: "explicit begin", sql: "-- +goose NO TRANSACTION\nBEGIN;\nDROP INDEX CONCURRENTLY users_email;\nCOMMIT;", want: true},
		{name: "reindex concurrently", sql: `REINDEX INDEX CONCURRENTLY users_email;`, want: true},
		{name: "detach concurrently", sql: `ALTER TABLE events DETACH PARTITION events_2020 CONCURRENTLY;`, want: true},
		{name: "goose no transaction", sql: "-- +goose NO TRANSACTION\nCREATE INDEX CONCURRENTLY users_email ON users (email);"},
		{name: "atlas txmode none", sql: "-- atlas:txmode none\nCREATE INDEX CONCURRENTLY users_email ON users (email);"},
		{name: "morph", sql: "-- morph:nontransactional\nCREATE INDEX CONCURRENTLY users_email ON users (email);"},
		{name: "sqlx", sql: "-- no-transaction\nCREATE INDEX CONCURRENTLY users_email ON users (email);"},
		{name: "dbmate", sql: "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY users_email ON users (email);\n-- migrate:down\nDROP INDEX users_email;"},
		{name: "after explicit commit", sql: "BEGIN;\nALTER TABLE users ADD COLUMN x int;\nCOMMIT;\nCREATE INDEX CONCURRENTLY users_x ON users (x);"},
		{name: "liquibase changeset", sql: "--liquibase formatted sql\n--changeset a:1\nCREATE INDEX CONCURRENTLY users_email ON users (email);", want: true},
		{name: "liquibase changeset with runInTransaction:false", sql: "--liquibase formatted sql\n--changeset a:1\nALTER TABLE users ADD COLUMN x int;\n--changeset a:2 runInTransaction:false\nCREATE INDEX CONCURRENTLY users_email ON users (email);"},
		{name: "liquibase changeset line with a tab", sql: "--liquibase formatted sql\n--changeset\ta:1\nALTER TABLE users ADD COLUMN x int;\n--changeset\ta:2 runInTransaction:false\nCREATE INDEX CONCURRENTLY users_email ON users (email);"},
		{name: "liquibase runInTransaction with another value than true", sql: "--liquibase formatted sql\n--changeset a:1 runInTransaction:no\nCREATE INDEX CONCURRENTLY users_email ON users (email);"},
		{name: "liquibase runInTransaction: with a space is not read", sql: "--liquibase formatted sql\n--changeset a:1 runInTransaction: false\nCREATE INDEX CONCURRENTLY users_email ON users (email);", want: true},
		{name: "liquibase header not on the first line", sql: "SELECT 1;\n--liquibase formatted sql\n--changeset a:1 runInTransaction:false\nCREATE INDEX CONCURRENTLY users_email ON users (email);", want: true},
		{name: "runner configured not to wrap", cfg: Config{Transaction: "none"}, sql: `CREATE INDEX CONCURRENTLY users_email ON users (email);`},
	})
}
