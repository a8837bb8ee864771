package lint

import "testing"

func TestRuleDropColumn(t *testing.T) {
	runRuleCases(t, "drop-column", []ruleCase{
		{name: "drop column", sql: `ALTER TABLE users DROP COLUMN bio;`, want: true},
		{name: "if exists cascade", sql: `ALTER TABLE users DROP COLUMN IF EXISTS bio CASCADE;`, want: true},
		{name: "table from an earlier file", sql: "CREATE TABLE t (a int, b int);" + fileSep + "ALTER TABLE t DROP COLUMN b;", want: true},
		{name: "new table", sql: "CREATE TABLE t (a int, b int);\nALTER TABLE t DROP COLUMN b;"},
		{name: "drop constraint", sql: `ALTER TABLE users DROP CONSTRAINT users_bio_check;`},
		{name: "drop default", sql: `ALTER TABLE users ALTER COLUMN bio DROP DEFAULT;`},
	})
}

func TestRuleDropTable(t *testing.T) {
	runRuleCases(t, "drop-table", []ruleCase{
		{name: "drop table", sql: `DROP TABLE users;`, want: true},
		{name: "if exists", sql: `DROP TABLE IF EXISTS legacy_sessions;`, want: true},
		{name: "several", sql: "CREATE TABLE tmp (a int);\nDROP TABLE tmp, legacy;", want: true},
		{name: "new table", sql: "CREATE TABLE tmp (a int);\nDROP TABLE tmp;"},
		{name: "drop view", sql: `DROP VIEW user_stats;`},
		{name: "drop index", sql: "-- +goose NO TRANSACTION\nDROP INDEX CONCURRENTLY users_email;"},
	})
}

func TestRuleRenameColumn(t *testing.T) {
	runRuleCases(t, "rename-column", []ruleCase{
		{name: "rename column", sql: `ALTER TABLE users RENAME COLUMN name TO full_name;`, want: true},
		{name: "without COLUMN keyword", sql: `ALTER TABLE users RENAME name TO full_name;`, want: true},
		{name: "schema qualified", sql: `ALTER TABLE app.users RENAME COLUMN name TO full_name;`, want: true},
		{name: "new table", sql: "CREATE TABLE t (a int);\nALTER TABLE t RENAME COLUMN a TO b;"},
		{name: "rename constraint", sql: `ALTER TABLE users RENAME CONSTRAINT a TO b;`},
		{name: "rename index", sql: `ALTER INDEX users_a RENAME TO users_b;`},
	})
}

func TestRuleRenameTable(t *testing.T) {
	runRuleCases(t, "rename-table", []ruleCase{
		{name: "rename table", sql: `ALTER TABLE users RENAME TO accounts;`, want: true},
		{name: "if exists", sql: `ALTER TABLE IF EXISTS users RENAME TO accounts;`, want: true},
		{name: "schema qualified", sql: `ALTER TABLE app.users RENAME TO accounts;`, want: true},
		{name: "new table", sql: "CREATE TABLE tmp (a int);\nALTER TABLE tmp RENAME TO t;"},
		{name: "rename column", sql: `ALTER TABLE users RENAME COLUMN a TO b;`},
		{name: "rename view", sql: `ALTER VIEW user_stats RENAME TO stats;`},
		{name: "old name kept as a view", sql: "ALTER TABLE users RENAME TO accounts;\nCREATE VIEW users AS SELECT * FROM accounts;"},
		{name: "view in another transaction", sql: "-- +goose NO TRANSACTION\nALTER TABLE users RENAME TO accounts;\nCREATE VIEW users AS SELECT * FROM accounts;", want: true},
	})
}

func TestRuleAddColumnNotNullNoDefault(t *testing.T) {
	runRuleCases(t, "add-column-not-null-no-default", []ruleCase{
		{name: "not null", sql: `ALTER TABLE users ADD COLUMN tenant_id bigint NOT NULL;`, want: true},
		{name: "not null with null default", sql: `ALTER TABLE users ADD COLUMN tenant_id bigint NOT NULL DEFAULT NULL;`, want: true},
		{name: "primary key column", sql: `ALTER TABLE users ADD COLUMN uid uuid PRIMARY KEY;`, want: true},
		{name: "with default", sql: `ALTER TABLE users ADD COLUMN active bool NOT NULL DEFAULT true;`},
		{name: "nullable", sql: `ALTER TABLE users ADD COLUMN tenant_id bigint;`},
		{name: "identity", sql: `ALTER TABLE users ADD COLUMN n bigint NOT NULL GENERATED ALWAYS AS IDENTITY;`},
		{name: "new table", sql: "CREATE TABLE t (a int);\nALTER TABLE t ADD COLUMN b int NOT NULL;"},
	})
}

func TestRuleDropNotNull(t *testing.T) {
	runRuleCases(t, "drop-not-null", []ruleCase{
		{name: "drop not null", sql: `ALTER TABLE users ALTER COLUMN email DROP NOT NULL;`, want: true},
		{name: "schema qualified", sql: `ALTER TABLE app.users ALTER COLUMN email DROP NOT NULL;`, want: true},
		{name: "with other commands", sql: `ALTER TABLE users ADD COLUMN x int, ALTER COLUMN email DROP NOT NULL;`, want: true},
		{name: "set not null", sql: `ALTER TABLE users ALTER COLUMN email SET NOT NULL;`},
		{name: "new table", sql: "CREATE TABLE t (a int NOT NULL);\nALTER TABLE t ALTER COLUMN a DROP NOT NULL;"},
		{name: "ignored inline", sql: "ALTER TABLE users ALTER COLUMN email DROP NOT NULL; -- tandem-lint-ignore: drop-not-null"},
	})
}

func TestRuleEnumRenameValue(t *testing.T) {
	runRuleCases(t, "enum-rename-value", []ruleCase{
		{name: "rename value", sql: `ALTER TYPE status RENAME VALUE 'active' TO 'enabled';`, want: true},
		{name: "schema qualified", sql: `ALTER TYPE app.status RENAME VALUE 'a' TO 'b';`, want: true},
		{name: "enum from an earlier file", sql: "CREATE TYPE status AS ENUM ('a');" + fileSep + "ALTER TYPE status RENAME VALUE 'a' TO 'b';", want: true},
		{name: "add value", sql: `ALTER TYPE status ADD VALUE 'archived';`},
		{name: "new enum", sql: "CREATE TYPE status AS ENUM ('a');\nALTER TYPE status RENAME VALUE 'a' TO 'b';"},
		{name: "rename type attribute", sql: `ALTER TYPE status RENAME TO state;`},
	})
}
