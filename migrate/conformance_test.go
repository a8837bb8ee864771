package migrate

import (
	"context"
	"strings"
	"testing"
)

// conformanceDir holds a migration directory of Tandem's own that uses every operation
// of pgroll's format and every field of each (see its files).
const conformanceDir = "testdata/conformance"

// catalog describes the base schema for comparison: every column, constraint and index
// definition, the tables' comments and replica identities.
func (e *testEnv) catalog() string {
	e.t.Helper()
	return strings.Join(queryStrings(e.t, e.db, `
		SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
		       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
		       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
		       || CASE a.attidentity WHEN 'a' THEN ' identity always' WHEN 'd' THEN ' identity by default' ELSE '' END
		       || CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END
		       || coalesce(' comment ' || col_description(c.oid, a.attnum), '')
		  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
		 WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
		UNION ALL
		SELECT 'constraint ' || c.relname || '.' || k.conname || ' ' || pg_get_constraintdef(k.oid)
		  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = 'public'
		UNION ALL
		SELECT 'index ' || pg_get_indexdef(x.indexrelid)
		  FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = 'public'
		UNION ALL
		SELECT 'table ' || c.relname || ' replica identity ' || c.relreplident::text || coalesce(' comment ' || obj_description(c.oid, 'pg_class'), '')
		  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = 'public' AND c.relkind = 'r'
		ORDER BY 1`), "\n")
}

// conformanceWrites writes through the newest version once the whole directory is applied.
func conformanceWrites(t *testing.T, e *testEnv, vs string) {
	t.Helper()
	v := e.version("")
	if vs != "" {
		v = e.versionSchema(vs)
	}
	mustExec(t, v, "INSERT INTO racks (code, hall, floor) VALUES ('A1', 'east', 1)")
	mustExec(t, v, "INSERT INTO authors (name) VALUES ('Ada')")
	expectString(t, v, "SELECT id || ' ' || slug FROM authors", "100 ada")
	mustExec(t, v, "INSERT INTO editions (author_id, number) VALUES (100, 1)")
	mustExec(t, v, "INSERT INTO books (author_id, headline, shout, price, edition, coauthor_id) VALUES (100, 'notes', 'NOTES', 3, 1, 100)")
	// NOT NULL is a check until complete, then the column's own: either way the message
	// names the column.
	if _, err := v.Exec(context.Background(), "INSERT INTO books (headline, price) VALUES ('quiet', 1)"); err == nil || !strings.Contains(err.Error(), "shout") {
		t.Fatalf("insert without shout: err = %v, want a NOT NULL violation naming shout", err)
	}
	expectString(t, v, "SELECT shelf || ' ' || price || ' ' || coalesce(shout, '-') FROM books", "A1 3 NOTES")
	expectSQLState(t, v, "INSERT INTO editions (author_id, number) VALUES (100, 0)", "23514")
}

// TestConformanceOneStep applies the conformance directory with tandem migrate's one
// step: start, writes through the new version, complete.
func TestConformanceOneStep(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	migs, err := ReadDir(conformanceDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Migrate(ctx, migs, false); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	name, vs, err := e.m.LatestVersion(ctx)
	if err != nil || vs != "library_v4" || !strings.HasPrefix(name, "04_") {
		t.Fatalf("latest version: %s %s %v, want the version schema the last file names", name, vs, err)
	}
	conformanceWrites(t, e, vs)
	if _, err := e.m.Migrate(ctx, migs, true); err != nil {
		t.Fatalf("migrate --complete: %v", err)
	}
	e.assertNoLeftovers(vs)
	expectString(t, e.db, "SELECT obj_description('racks'::regclass, 'pg_class')", "renamed from shelves")
}

// TestConformanceFileByFile applies the conformance directory one file at a time (start,
// complete) and compares the result with the one step's: the same tables, columns,
// constraints and indexes.
func TestConformanceFileByFile(t *testing.T) {
	ctx := context.Background()
	one := newEnv(t)
	migs, err := ReadDir(conformanceDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := one.m.Migrate(ctx, migs, true); err != nil {
		t.Fatalf("migrate --complete: %v", err)
	}
	e := newEnv(t)
	for _, mig := range migs {
		if err := e.m.Start(ctx, mig); err != nil {
			t.Fatalf("start %s: %v", mig.Name, err)
		}
		if err := e.m.Rollback(ctx); err != nil {
			t.Fatalf("rollback %s: %v", mig.Name, err)
		}
		if err := e.m.Start(ctx, mig); err != nil {
			t.Fatalf("start %s again: %v", mig.Name, err)
		}
		if err := e.m.Complete(ctx); err != nil {
			t.Fatalf("complete %s: %v", mig.Name, err)
		}
	}
	e.assertNoLeftovers("library_v4")
	if a, b := one.catalog(), e.catalog(); a != b {
		t.Fatalf("one step and file by file differ:\none step:\n%s\n\nfile by file:\n%s", a, b)
	}
	conformanceWrites(t, e, "")
}
