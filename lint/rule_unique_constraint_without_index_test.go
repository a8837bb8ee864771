package lint

import "testing"

func TestRuleUniqueConstraintWithoutIndex(t *testing.T) {
	runRuleCases(t, "unique-constraint-without-index", []ruleCase{
		{name: "unique", sql: `ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);`, want: true},
		{name: "primary key", sql: `ALTER TABLE users ADD PRIMARY KEY (id);`, want: true},
		{name: "inline unique column", sql: `ALTER TABLE users ADD COLUMN handle text UNIQUE;`, want: true},
		{name: "unique using index", sql: `ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_idx;`},
		{name: "primary key using index", sql: `ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY USING INDEX users_id_idx;`},
		{name: "new table", sql: "CREATE TABLE t (a int);\nALTER TABLE t ADD UNIQUE (a);"},
		{name: "create table with unique", sql: `CREATE TABLE t (a int UNIQUE, b int, PRIMARY KEY (b));`},
	})
}
