package lint

import "testing"

func TestRuleLockHeldAcrossStatements(t *testing.T) {
	runRuleCases(t, "lock-held-across-statements", []ruleCase{
		{name: "not valid then validate in one transaction", sql: "SET lock_timeout = '2s';\nALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;\nALTER TABLE orders VALIDATE CONSTRAINT fk;", want: true},
		{name: "backfill after add column", sql: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN n int;\nUPDATE users SET n = 0;", want: true},
		{name: "index build after a strong lock", sql: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN n int;\nCREATE INDEX ON users (n);", want: true},
		{name: "second table without lock_timeout", sql: "ALTER TABLE users ADD COLUMN n int;\nALTER TABLE orders ADD COLUMN m int;", want: true},
		{name: "explicit transaction", sql: "-- +goose NO TRANSACTION\nBEGIN;\nLOCK TABLE users IN ACCESS EXCLUSIVE MODE;\nDELETE FROM users WHERE id < 0;\nCOMMIT;", want: true},
		{name: "validate in a later transaction", sql: "SET lock_timeout = '2s';\nALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;" + fileSep + "ALTER TABLE orders VALIDATE CONSTRAINT fk;"},
		{name: "commit in between", sql: "-- +goose NO TRANSACTION\nSET lock_timeout = '2s';\nBEGIN;\nALTER TABLE orders ADD CONSTRAINT c CHECK (n > 0) NOT VALID;\nCOMMIT;\nALTER TABLE orders VALIDATE CONSTRAINT c;"},
		{name: "several metadata-only changes to one table", sql: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN a int;\nALTER TABLE users ADD COLUMN b text;\nCOMMENT ON COLUMN users.a IS 'x';"},
		{name: "no transaction", sql: "-- +goose NO TRANSACTION\nSET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN n int;\nUPDATE users SET n = 0 WHERE id = 1;"},
		{name: "new table", sql: "CREATE TABLE t (a int);\nALTER TABLE t ADD COLUMN b int;\nINSERT INTO t VALUES (1, 2);\nCREATE INDEX ON t (b);"},
		{name: "second table with lock_timeout", sql: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN n int;\nALTER TABLE orders ADD COLUMN m int;"},
	})
}
