package lint

import (
	"strings"
	"testing"
)

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

// TestFlywayTransactions: Flyway runs a migration without a transaction when every
// statement in it is one that cannot run in a transaction, and refuses a migration that
// mixes such statements with others; files named otherwise are wrapped as usual.
func TestFlywayTransactions(t *testing.T) {
	tests := []struct {
		file, sql string
		want      string // in the concurrently-in-transaction finding; "" for none
	}{
		{"V2__users_email.sql", "CREATE INDEX CONCURRENTLY users_email ON users (email);", ""},
		{"V2_1__indexes.sql", "-- swap the index\nDROP INDEX CONCURRENTLY users_email;\nCREATE UNIQUE INDEX CONCURRENTLY users_email ON users (email);", ""},
		{"V3.1.2__reindex.sql", "REINDEX INDEX CONCURRENTLY users_email;", ""},
		{"R__indexes.sql", "CREATE INDEX CONCURRENTLY users_email ON users (email);", ""},
		{"V4__mixed.sql", "ALTER TABLE users ADD COLUMN x int;\nCREATE INDEX CONCURRENTLY users_x ON users (x);", "Flyway migration with other statements"},
		{"V5__timeout.sql", "SET lock_timeout = '2s';\nCREATE INDEX CONCURRENTLY users_email ON users (email);", "mixed=true"},
		{"005_users_email.sql", "CREATE INDEX CONCURRENTLY users_email ON users (email);", "single transaction the migration runner wraps"},
		{"v2__lower_case_prefix.sql", "CREATE INDEX CONCURRENTLY users_email ON users (email);", "single transaction"},
		{"V6_no_separator.sql", "CREATE INDEX CONCURRENTLY users_email ON users (email);", "single transaction"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			res, err := Lint([]Source{{Name: tt.file, SQL: tt.sql}}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range res.Findings {
				if f.Rule == "concurrently-in-transaction" {
					got = append(got, f.Message)
				}
			}
			switch {
			case tt.want == "" && len(got) > 0:
				t.Errorf("findings %q, want none", got)
			case tt.want != "" && (len(got) != 1 || !strings.Contains(got[0], tt.want)):
				t.Errorf("findings %q, want one with %q", got, tt.want)
			}
		})
	}
}
