package lint

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-pg/tandem/internal/pgtest"
)

// TestPgDumpOutput lints what pg_dump writes for a real database, data included: a dump
// is a psql script (meta-commands, COPY data), and a history often starts with one. All
// of it must be read, and since the dump creates everything it touches, nothing in it is
// a finding.
func TestPgDumpOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	pgDump, err := exec.LookPath("pg_dump")
	if err != nil {
		t.Skip("no pg_dump on PATH")
	}
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range []string{
		`CREATE TABLE authors (id serial PRIMARY KEY, name text NOT NULL UNIQUE)`,
		`CREATE TABLE books (id bigserial PRIMARY KEY, author_id int REFERENCES authors, title text, note text,
			CHECK (length(title) > 0))`,
		`CREATE SEQUENCE tickets START 100`,
		`CREATE INDEX books_title ON books (lower(title))`,
		`CREATE VIEW titles AS SELECT title FROM books`,
		`CREATE FUNCTION shout(t text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN upper(t) || '!'; END $$`,
		`INSERT INTO authors (name) VALUES ('a;b'), (E'tab\there'), (E'back\\slash'), ('\.'), (E'line\nbreak'), ('it''s')`,
		`INSERT INTO books (author_id, title, note) SELECT (g % 6) + 1, 'title ' || g || ';', CASE WHEN g % 2 = 0 THEN NULL ELSE E'\\.' END
			FROM generate_series(1, 50) g`,
	} {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	out, err := exec.CommandContext(ctx, pgDump, "--no-owner", "--dbname", dbURL).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	dump := string(out)
	if !strings.Contains(dump, "FROM stdin;") {
		t.Fatalf("the dump holds no COPY data:\n%s", dump)
	}
	res, err := LintString("dump.sql", dump, Options{})
	if err != nil {
		t.Fatalf("lint: %v\n%s", err, dump)
	}
	for _, f := range res.Findings {
		t.Errorf("%s:%d: %s [%s]", f.File, f.Line, f.Message, f.Rule)
	}
	if c := res.Coverage; c.Analysed != c.Statements || c.Statements < 10 {
		t.Errorf("%d of %d statements analysed, want all of them (at least 10)", c.Analysed, c.Statements)
	}
	for _, s := range res.Coverage.Skipped {
		if !strings.Contains(s.Reason, "psql meta-command") {
			t.Errorf("skipped line %d: %s", s.Line, s.Reason)
		}
	}
	// The same dump with the owner statements pg_dump writes by default: ALTER ... OWNER
	// of the sequences it creates are on new objects too.
	out, err = exec.CommandContext(ctx, pgDump, "--dbname", dbURL).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	if res, err = LintString("dump.sql", string(out), Options{}); err != nil || len(res.Findings) > 0 {
		t.Errorf("with owners: %v, %d findings (the first: %+v)", err, len(res.Findings), res.Findings)
	}
}
