package lint

import "testing"

func TestRuleSetTablespaceOrLogged(t *testing.T) {
	runRuleCases(t, "set-tablespace-or-logged", []ruleCase{
		{name: "set tablespace", sql: `ALTER TABLE users SET TABLESPACE fast;`, want: true},
		{name: "set logged", sql: `ALTER TABLE events SET LOGGED;`, want: true},
		{name: "set unlogged", sql: `ALTER TABLE events SET UNLOGGED;`, want: true},
		{name: "index set tablespace", sql: `ALTER INDEX users_email SET TABLESPACE fast;`, want: true},
		{name: "new table", sql: "CREATE UNLOGGED TABLE t (a int);\nALTER TABLE t SET LOGGED;"},
		{name: "storage parameter", sql: `ALTER TABLE users SET (fillfactor = 90);`},
		{name: "set statistics", sql: `ALTER TABLE users ALTER COLUMN email SET STATISTICS 500;`},
	})
}
