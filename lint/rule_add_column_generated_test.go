package lint

import "testing"

func TestRuleAddColumnGenerated(t *testing.T) {
	runRuleCases(t, "add-column-generated", []ruleCase{
		{name: "bigserial", sql: `ALTER TABLE users ADD COLUMN seq bigserial;`, want: true},
		{name: "serial", sql: `ALTER TABLE users ADD COLUMN seq serial NOT NULL;`, want: true},
		{name: "identity", sql: `ALTER TABLE users ADD COLUMN id2 bigint GENERATED ALWAYS AS IDENTITY;`, want: true},
		{name: "stored generated", sql: `ALTER TABLE users ADD COLUMN lower_email text GENERATED ALWAYS AS (lower(email)) STORED;`, want: true},
		{name: "plain column", sql: `ALTER TABLE users ADD COLUMN n bigint;`},
		{name: "serial on a new table", sql: "CREATE TABLE t (x int);\nALTER TABLE t ADD COLUMN id bigserial;"},
		{name: "create table with identity", sql: `CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);`},
		{name: "constant default", sql: `ALTER TABLE users ADD COLUMN n bigint DEFAULT 0;`},
	})
}
