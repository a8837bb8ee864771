package lint

import "testing"

const usersV1 = "CREATE TABLE users (id int PRIMARY KEY, name varchar(50), price numeric(10,2), n int, t timestamp(3), note text, code char(4));" + fileSep

func TestRuleAlterColumnTypeRewrite(t *testing.T) {
	runRuleCases(t, "alter-column-type-rewrite", []ruleCase{
		{name: "int to bigint", sql: usersV1 + `ALTER TABLE users ALTER COLUMN n TYPE bigint;`, want: true},
		{name: "varchar narrowing", sql: usersV1 + `ALTER TABLE users ALTER COLUMN name TYPE varchar(20);`, want: true},
		{name: "numeric scale change", sql: usersV1 + `ALTER TABLE users ALTER COLUMN price TYPE numeric(12,4);`, want: true},
		{name: "text to int with USING", sql: usersV1 + `ALTER TABLE users ALTER COLUMN note TYPE int USING note::int;`, want: true},
		{name: "unknown previous type", sql: `ALTER TABLE users ALTER COLUMN name TYPE varchar(100);`, want: true},
		{name: "varchar widening", sql: usersV1 + `ALTER TABLE users ALTER COLUMN name TYPE varchar(100);`},
		{name: "varchar to text", sql: usersV1 + `ALTER TABLE users ALTER COLUMN name TYPE text;`},
		{name: "varchar to unlimited varchar", sql: usersV1 + `ALTER TABLE users ALTER COLUMN name TYPE character varying;`},
		{name: "numeric precision increase", sql: usersV1 + `ALTER TABLE users ALTER COLUMN price TYPE numeric(14,2);`},
		{name: "timestamp precision increase", sql: usersV1 + `ALTER TABLE users ALTER COLUMN t TYPE timestamp(6);`},
		{name: "new table", sql: "CREATE TABLE t (n int);\nALTER TABLE t ALTER COLUMN n TYPE bigint;"},
		{name: "type known from an earlier ALTER", sql: usersV1 + "ALTER TABLE users ALTER COLUMN name TYPE varchar(100);" + fileSep + "ALTER TABLE users ALTER COLUMN name TYPE varchar(200);"},
	})
}

func TestRuleColumnTypeSemanticChange(t *testing.T) {
	runRuleCases(t, "column-type-semantic-change", []ruleCase{
		{name: "int to text", sql: usersV1 + `ALTER TABLE users ALTER COLUMN n TYPE text;`, want: true},
		{name: "varchar narrowing", sql: usersV1 + `ALTER TABLE users ALTER COLUMN name TYPE varchar(10);`, want: true},
		{name: "timestamp to timestamptz", sql: usersV1 + `ALTER TABLE users ALTER COLUMN t TYPE timestamptz;`, want: true},
		{name: "bigint to int", sql: usersV1 + "ALTER TABLE users ALTER COLUMN n TYPE bigint;" + fileSep + `ALTER TABLE users ALTER COLUMN n TYPE int;`, want: true},
		{name: "char to text drops blanks", sql: usersV1 + `ALTER TABLE users ALTER COLUMN code TYPE text;`, want: true},
		{name: "int to bigint", sql: usersV1 + `ALTER TABLE users ALTER COLUMN n TYPE bigint;`},
		{name: "varchar to text", sql: usersV1 + `ALTER TABLE users ALTER COLUMN name TYPE text;`},
		{name: "numeric widening", sql: usersV1 + `ALTER TABLE users ALTER COLUMN price TYPE numeric(20,2);`},
		{name: "unknown previous type", sql: `ALTER TABLE users ALTER COLUMN n TYPE text;`},
		{name: "new table", sql: "CREATE TABLE t (n int);\nALTER TABLE t ALTER COLUMN n TYPE text;"},
	})
}
