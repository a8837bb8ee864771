package lint

import "testing"

func TestRuleConstraintWithoutNotValid(t *testing.T) {
	runRuleCases(t, "constraint-without-not-valid", []ruleCase{
		{name: "check", sql: `ALTER TABLE users ADD CONSTRAINT age_positive CHECK (age > 0);`, want: true},
		{name: "foreign key", sql: `ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id);`, want: true},
		{name: "unnamed check", sql: `ALTER TABLE users ADD CHECK (age > 0);`, want: true},
		{name: "inline references on a new column", sql: `ALTER TABLE orders ADD COLUMN user_id bigint REFERENCES users (id);`, want: true},
		{name: "check NOT VALID", sql: `ALTER TABLE users ADD CONSTRAINT age_positive CHECK (age > 0) NOT VALID;`},
		{name: "foreign key NOT VALID", sql: `ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;`},
		{name: "validate in a later file", sql: "ALTER TABLE users ADD CONSTRAINT c CHECK (age > 0) NOT VALID;" + fileSep + "ALTER TABLE users VALIDATE CONSTRAINT c;"},
		{name: "new table", sql: "CREATE TABLE t (a int);\nALTER TABLE t ADD CONSTRAINT c CHECK (a > 0);"},
		{name: "create table with references", sql: `CREATE TABLE orders (id int, user_id int REFERENCES users (id), CHECK (id > 0));`},
	})
}
