package lint

import "testing"

func TestRuleSetNotNullScan(t *testing.T) {
	runRuleCases(t, "set-not-null-scan", []ruleCase{
		{name: "plain", sql: `ALTER TABLE users ALTER COLUMN email SET NOT NULL;`, want: true},
		{name: "check not yet validated", sql: "ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID;" + fileSep + "ALTER TABLE users ALTER COLUMN email SET NOT NULL;", want: true},
		{name: "validated check before pg 12", pg: 11, sql: "ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID;" + fileSep + "ALTER TABLE users VALIDATE CONSTRAINT email_nn;" + fileSep + "ALTER TABLE users ALTER COLUMN email SET NOT NULL;", want: true},
		{name: "check on another column", sql: "ALTER TABLE users ADD CONSTRAINT name_nn CHECK (name IS NOT NULL) NOT VALID;" + fileSep + "ALTER TABLE users VALIDATE CONSTRAINT name_nn;" + fileSep + "ALTER TABLE users ALTER COLUMN email SET NOT NULL;", want: true},
		{name: "validated check from earlier files", sql: "ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID;" + fileSep + "ALTER TABLE users VALIDATE CONSTRAINT email_nn;" + fileSep + "ALTER TABLE users ALTER COLUMN email SET NOT NULL;"},
		{name: "validated check combined with AND", sql: "ALTER TABLE users ADD CONSTRAINT nn CHECK (name IS NOT NULL AND email IS NOT NULL) NOT VALID;" + fileSep + "ALTER TABLE users VALIDATE CONSTRAINT nn;" + fileSep + "ALTER TABLE users ALTER COLUMN email SET NOT NULL;"},
		{name: "new table", sql: "CREATE TABLE t (a int);\nALTER TABLE t ALTER COLUMN a SET NOT NULL;"},
		{name: "validated in the same file before", sql: "ALTER TABLE users VALIDATE CONSTRAINT email_nn;\nALTER TABLE users ALTER COLUMN email SET NOT NULL;", want: true},
		{name: "unnamed check validated later", sql: "ALTER TABLE users ADD CHECK (email IS NOT NULL) NOT VALID;" + fileSep + "ALTER TABLE users VALIDATE CONSTRAINT users_email_check;" + fileSep + "ALTER TABLE users ALTER COLUMN email SET NOT NULL;"},
	})
}
