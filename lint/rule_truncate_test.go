package lint

import "testing"

func TestRuleTruncate(t *testing.T) {
	runRuleCases(t, "truncate", []ruleCase{
		{name: "truncate", sql: `TRUNCATE users;`, want: true},
		{name: "truncate table cascade", sql: `TRUNCATE TABLE sessions CASCADE;`, want: true},
		{name: "several tables", sql: "CREATE TABLE tmp (a int);\nTRUNCATE tmp, sessions;", want: true},
		{name: "new table", sql: "CREATE TABLE tmp (a int);\nTRUNCATE tmp;"},
		{name: "delete", sql: `DELETE FROM sessions WHERE expires_at < now();`},
		{name: "drop", sql: `DROP TABLE IF EXISTS tmp_import;`},
	})
}
