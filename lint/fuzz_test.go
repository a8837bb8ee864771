package lint

import (
	"io"
	"testing"
)

// FuzzLint feeds arbitrary text to the whole pipeline: parsing, catalog replay, every rule
// and every output format. Any input must give either a result or a *ParseError, never a
// panic. The corpus under testdata/fuzz/FuzzLint runs as part of the normal tests.
func FuzzLint(f *testing.F) {
	seeds := []string{
		"CREATE INDEX i ON t (a);",
		"-- +goose Up\nALTER TABLE t ADD COLUMN c int DEFAULT random();\n-- +goose Down\nDROP TABLE t;",
		"BEGIN; ALTER TABLE t ADD CONSTRAINT c CHECK (a IS NOT NULL) NOT VALID; ALTER TABLE t VALIDATE CONSTRAINT c; COMMIT;",
		"CREATE TABLE t (id bigserial PRIMARY KEY, v varchar(5) UNIQUE REFERENCES u (x));\nALTER TABLE t ALTER COLUMN v TYPE varchar(9);",
		"SET lock_timeout = '1s'; CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a); -- tandem-lint-ignore: all",
		"DO $$ BEGIN EXECUTE 'x'; END $$; CALL p(); SELECT set_config('statement_timeout', '5s', true);",
		"ALTER TABLE t ALTER COLUMN a SET NOT NULL, ALTER COLUMN b DROP NOT NULL, DROP COLUMN c, ADD EXCLUDE USING gist (r WITH &&);",
		"ALTER TYPE e RENAME VALUE 'a' TO 'b'; REFRESH MATERIALIZED VIEW m; TRUNCATE t; VACUUM FULL; CLUSTER t;",
		"ALTER TABLE p DETACH PARTITION c; ALTER TABLE t SET TABLESPACE x; REINDEX TABLE t; DROP INDEX i;",
		"/* unterminated",
		"SELECT $a$ -- $a$; SELECT 'it''s'; SELECT E'\\' -- x';",
		"\\set x 1\nCOPY t FROM stdin; SELECT 1;\n1\ta;b\r\n\\.\r\nSELECT 'x' \\gexec\n\\copy t from stdin\n2\n\\.\n",
		"--liquibase formatted sql\n--changeset a:1 runInTransaction:false\nCREATE INDEX CONCURRENTLY i ON t (a);\n--changeset\tb:2\nALTER TABLE t ADD COLUMN c int;",
		"\ufeffCOPY t FROM stdin",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		res, err := LintString("fuzz.sql", sql, Options{})
		if err != nil {
			if _, ok := AsParseError(err); !ok {
				t.Fatalf("error that is not a parse error: %v", err)
			}
		}
		checkLeanParse(t, []Source{{Name: "fuzz.sql", SQL: sql}}, Options{}, res, err)
		for _, format := range Formats {
			if err := Write(io.Discard, format, res); err != nil {
				t.Fatalf("%s: %v", format, err)
			}
		}
	})
}
