package lint

import "testing"

func TestRuleAddColumnVolatileDefault(t *testing.T) {
	runRuleCases(t, "add-column-volatile-default", []ruleCase{
		{name: "random", sql: `ALTER TABLE users ADD COLUMN r float8 DEFAULT random();`, want: true},
		{name: "uuid", sql: `ALTER TABLE users ADD COLUMN u uuid NOT NULL DEFAULT gen_random_uuid();`, want: true},
		{name: "clock_timestamp in a cast", sql: `ALTER TABLE users ADD COLUMN c timestamptz DEFAULT clock_timestamp()::timestamptz;`, want: true},
		{name: "volatile inside arithmetic", sql: `ALTER TABLE users ADD COLUMN n int DEFAULT (random() * 100)::int + 1;`, want: true},
		{name: "volatile in an array", sql: `ALTER TABLE users ADD COLUMN a uuid[] DEFAULT ARRAY[gen_random_uuid()];`, want: true},
		{name: "user function without volatility", sql: "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';" + fileSep + "ALTER TABLE users ADD COLUMN n int DEFAULT f();", want: true},
		{name: "any default before pg 11", sql: `ALTER TABLE users ADD COLUMN active bool DEFAULT true;`, pg: 10, want: true},
		{name: "constant", sql: `ALTER TABLE users ADD COLUMN active bool NOT NULL DEFAULT true;`},
		{name: "now is stable", sql: `ALTER TABLE users ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();`},
		{name: "cast and arithmetic of constants", sql: `ALTER TABLE users ADD COLUMN n numeric DEFAULT '1.5'::numeric * 2;`},
		{name: "array of constants", sql: `ALTER TABLE users ADD COLUMN tags text[] DEFAULT ARRAY['a', 'b']::text[];`},
		{name: "current_timestamp", sql: `ALTER TABLE users ADD COLUMN t timestamptz DEFAULT CURRENT_TIMESTAMP;`},
		{name: "immutable user function", sql: "CREATE FUNCTION f() RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT 1';" + fileSep + "ALTER TABLE users ADD COLUMN n int DEFAULT f();"},
		{name: "new table", sql: "CREATE TABLE t (id int);\nALTER TABLE t ADD COLUMN r float8 DEFAULT random();"},
		{name: "no default", sql: `ALTER TABLE users ADD COLUMN r float8;`},
	})
}
