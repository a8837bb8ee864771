package lint

import "testing"

func TestRuleMissingLockTimeout(t *testing.T) {
	runRuleCases(t, "missing-lock-timeout", []ruleCase{
		{name: "alter table", sql: `ALTER TABLE users ADD COLUMN bio text;`, want: true},
		{name: "timeout reset to zero", sql: "SET lock_timeout = 0;\nALTER TABLE users ADD COLUMN bio text;", want: true},
		{name: "timeout from an earlier file does not carry over", sql: "SET lock_timeout = '2s';" + fileSep + "ALTER TABLE users ADD COLUMN bio text;", want: true},
		{name: "set local ends with the transaction", sql: "BEGIN;\nSET LOCAL lock_timeout = '1s';\nCOMMIT;\nALTER TABLE users DROP COLUMN bio;", want: true},
		{name: "foreign key on a new table locks the referenced one", sql: `CREATE TABLE orders (id int, user_id int REFERENCES users (id));`, want: true},
		{name: "drop trigger", sql: `DROP TRIGGER audit ON users;`, want: true},
		{name: "create policy", sql: `CREATE POLICY own ON users USING (id = current_setting('app.user')::int);`, want: true},
		{name: "drop rule", sql: `DROP RULE keep ON users;`, want: true},
		{name: "comment does not block traffic", sql: `COMMENT ON TABLE users IS 'people';`},
		{name: "set lock_timeout", sql: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN bio text;"},
		{name: "set local in the file transaction", sql: "SET LOCAL lock_timeout TO 1000;\nALTER TABLE users ADD COLUMN bio text;"},
		{name: "set_config", sql: "SELECT set_config('lock_timeout', '3s', false);\nALTER TABLE users ADD COLUMN bio text;"},
		{name: "timeouts set by the runner", cfg: Config{TimeoutsSetByRunner: true}, sql: `ALTER TABLE users ADD COLUMN bio text;`},
		{name: "new table", sql: "CREATE TABLE t (a int);\nALTER TABLE t ADD COLUMN b int;"},
		{name: "an existing sequence", sql: `ALTER TABLE users_id_seq OWNER TO app;`, want: true},
		{name: "a new sequence", sql: "CREATE SEQUENCE tickets;\nALTER TABLE tickets OWNER TO app;"},
		{name: "a new serial column's sequence", sql: "CREATE TABLE t (id bigserial);\nALTER TABLE public.t_id_seq OWNER TO app;"},
		{name: "a sequence from an earlier file", sql: "CREATE SEQUENCE tickets;" + fileSep + "ALTER TABLE tickets OWNER TO app;", want: true},
		{name: "concurrent index does not block traffic", sql: "-- +goose NO TRANSACTION\nCREATE INDEX CONCURRENTLY i ON users (email);"},
	})
}

func TestRuleStatementTimeout(t *testing.T) {
	runRuleCases(t, "statement-timeout", []ruleCase{
		{name: "no statement_timeout", sql: "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN bio text;", want: true},
		{name: "reset", sql: "SET statement_timeout = '5s';\nRESET statement_timeout;\nALTER TABLE users DROP COLUMN bio;", want: true},
		{name: "short timeout on a concurrent build", sql: "-- +goose NO TRANSACTION\nSET statement_timeout = '5s';\nCREATE INDEX CONCURRENTLY i ON users (email);", want: true},
		{name: "timeout on validate", sql: "SET statement_timeout = 5000;\nALTER TABLE users VALIDATE CONSTRAINT c;", want: true},
		{name: "both timeouts set", sql: "SET lock_timeout = '2s';\nSET statement_timeout = '5s';\nALTER TABLE users ADD COLUMN bio text;"},
		{name: "runner sets timeouts", cfg: Config{TimeoutsSetByRunner: true}, sql: "ALTER TABLE users ADD COLUMN bio text;"},
		{name: "concurrent build without timeout", sql: "-- +goose NO TRANSACTION\nCREATE INDEX CONCURRENTLY i ON users (email);"},
		{name: "statement_timeout disabled for validate", sql: "SET statement_timeout = 0;\nALTER TABLE users VALIDATE CONSTRAINT c;"},
	})
}
