package lint

import (
	"fmt"
	"strings"
	"testing"
)

func TestRuleLockHeldAcrossStatements(t *testing.T) {
	runRuleCases(t, "lock-held-across-statements", []ruleCase{
		{name: "not valid then validate in one transaction", sql: "SET lock_timeout = '2s';\nALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;\nALTER TABLE orders VALIDATE CONSTRAINT fk;", want: true},
		{name: "backfill after add column", sql: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN n int;\nUPDATE users SET n = 0;", want: true},
		{name: "set not null after add column", sql: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN n int;\nALTER TABLE users ALTER COLUMN email SET NOT NULL;", want: true},
		// index-not-concurrent reports it; its fix also ends the held lock.
		{name: "index build after a strong lock", sql: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN n int;\nCREATE INDEX ON users (n);"},
		// missing-lock-timeout reports the wait.
		{name: "second table without lock_timeout", sql: "ALTER TABLE users ADD COLUMN n int;\nALTER TABLE orders ADD COLUMN m int;"},
		{name: "explicit transaction", sql: "-- +goose NO TRANSACTION\nBEGIN;\nLOCK TABLE users IN ACCESS EXCLUSIVE MODE;\nDELETE FROM users WHERE id < 0;\nCOMMIT;", want: true},
		{name: "validate in a later transaction", sql: "SET lock_timeout = '2s';\nALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;" + fileSep + "ALTER TABLE orders VALIDATE CONSTRAINT fk;"},
		{name: "liquibase: one changeset", sql: "--liquibase formatted sql\n--changeset a:1\nSET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN n int;\nUPDATE users SET n = 0;", want: true},
		{name: "liquibase: a changeset each", sql: "--liquibase formatted sql\n--changeset a:1\nSET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN n int;\n--changeset a:2\nUPDATE users SET n = 0;"},
		{name: "changeset comments without liquibase's header", sql: "--changeset a:1\nSET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN n int;\n--changeset a:2\nUPDATE users SET n = 0;", want: true},
		{name: "commit in between", sql: "-- +goose NO TRANSACTION\nSET lock_timeout = '2s';\nBEGIN;\nALTER TABLE orders ADD CONSTRAINT c CHECK (n > 0) NOT VALID;\nCOMMIT;\nALTER TABLE orders VALIDATE CONSTRAINT c;"},
		{name: "several metadata-only changes to one table", sql: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN a int;\nALTER TABLE users ADD COLUMN b text;\nCOMMENT ON COLUMN users.a IS 'x';"},
		{name: "no transaction", sql: "-- +goose NO TRANSACTION\nSET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN n int;\nUPDATE users SET n = 0 WHERE id = 1;"},
		{name: "new table", sql: "CREATE TABLE t (a int);\nALTER TABLE t ADD COLUMN b int;\nINSERT INTO t VALUES (1, 2);\nCREATE INDEX ON t (b);"},
		{name: "second table with lock_timeout", sql: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN n int;\nALTER TABLE orders ADD COLUMN m int;"},
	})
}

// TestGroupedFindings checks that one cause gives one finding, which lists the later
// statements it affects.
func TestGroupedFindings(t *testing.T) {
	tests := []struct {
		name string
		sql  string
		rule string
		want [][]int // per finding of rule: its line, then its Also lines
	}{
		{
			name: "missing lock_timeout once per file",
			sql:  "ALTER TABLE a ADD COLUMN x int;\nALTER TABLE b ADD COLUMN x int;\nDROP TRIGGER t ON c;\nALTER TABLE a ADD COLUMN y int;",
			rule: "missing-lock-timeout",
			want: [][]int{{1, 2, 3, 4}},
		},
		{
			name: "held lock once per transaction",
			sql:  "-- +goose NO TRANSACTION\nSET lock_timeout = '1s';\nBEGIN;\nALTER TABLE a ADD COLUMN x int;\nUPDATE a SET x = 1;\nALTER TABLE a VALIDATE CONSTRAINT c;\nCOMMIT;\nBEGIN;\nALTER TABLE b ADD COLUMN x int;\nDELETE FROM b;\nCOMMIT;",
			rule: "lock-held-across-statements",
			want: [][]int{{5, 6}, {10}},
		},
		{
			name: "an ignored statement is not listed",
			sql:  "ALTER TABLE a ADD COLUMN x int;\nALTER TABLE b ADD COLUMN x int; -- tandem-lint-ignore: missing-lock-timeout\nALTER TABLE c ADD COLUMN x int;",
			rule: "missing-lock-timeout",
			want: [][]int{{1, 3}},
		},
		{
			name: "index build left to index-not-concurrent",
			sql:  "CREATE INDEX i ON a (x);",
			rule: "missing-lock-timeout",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := LintString("m.sql", tt.sql, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var got [][]int
			for _, f := range res.Findings {
				if f.Rule == tt.rule {
					got = append(got, append([]int{f.Line}, f.Also...))
					if len(f.Also) > 0 && !strings.Contains(f.Message, fmt.Sprintf("line %d", f.Also[len(f.Also)-1])) {
						t.Errorf("message does not list the later lines: %s", f.Message)
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Errorf("%s findings (line, also lines) = %v, want %v", tt.rule, got, tt.want)
			}
		})
	}
}
