package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-pg/tandem/examples/catalog"
	"github.com/tandem-pg/tandem/internal/cli"
	"github.com/tandem-pg/tandem/internal/pgtest"
)

// TestMigrateStreams applies the example's releases, which carry three streams, with
// `tandem migrate tandem.yaml`, and checks its refusals and their exit codes.
func TestMigrateStreams(t *testing.T) {
	url := pgtest.NewDatabase(t)
	dir := t.TempDir()
	if err := os.CopyFS(dir, catalog.ReleaseFiles); err != nil {
		t.Fatal(err)
	}
	db := "--postgres-url=" + url
	v1, v2 := filepath.Join(dir, "v1", "tandem.yaml"), filepath.Join(dir, "v2", "tandem.yaml")
	unsafe := filepath.Join(dir, "v2", "ops", "pre-deploy", "0002_rename_sku.sql")
	applied := filepath.Join(dir, "v2", "ops", "pre-deploy", "0001_item_views.sql")
	orig, err := os.ReadFile(applied)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name     string
		before   func()
		args     []string
		wantCode int
		wantOut  []string
	}{
		{"v1 in one step", nil, []string{"migrate", v1, db, "--complete"}, cli.ExitOK,
			[]string{"expanded ops/0001_item_views\nexpanded core/01_catalog\nexpanded reviews/01_reviews\nversion schema: public_01_catalog\n", "  reviews      pgroll applied 1 (last 01_reviews)"}},
		{"an unsafe pre-deploy file", func() {
			writeFile(t, filepath.Dir(unsafe), filepath.Base(unsafe), "ALTER TABLE items RENAME COLUMN sku TO stock_code;\n")
		},
			[]string{"migrate", v2, db}, cli.ExitFailure, []string{"0002_rename_sku.sql:1:", "(rename-column); recipe:", "nothing was applied"}},
		{"a changed applied file", func() {
			if err := os.Remove(unsafe); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Dir(applied), filepath.Base(applied), string(orig)+"-- edited\n")
		}, []string{"migrate", v2, db}, cli.ExitUsage, []string{"0001_item_views.sql: stream ops's pre-deploy file was applied with checksum"}},
		{"v2 expanded", func() { writeFile(t, filepath.Dir(applied), filepath.Base(applied), string(orig)) },
			[]string{"migrate", v2, db, "--json"}, cli.ExitOK, []string{`"version_schema": "public_02_3_price_bigint"`, `"name": "02_price_paid"`}},
		{"status shows every stream", nil, []string{"status", db}, cli.ExitOK,
			[]string{"streams:\n", "  reviews      pgroll applied 1 (last 01_reviews), in progress 02_price_paid\n", "  ops          sql    applied 2 (last pre-deploy/0002_item_views_item_id)\n"}},
		{"v2 contracted", nil, []string{"migrate", v2, db, "--contract"}, cli.ExitOK, []string{"contracted ops/0003_drop_referrer\n"}},
		{"nothing left", nil, []string{"migrate", v2, db}, cli.ExitOK, []string{"nothing to apply: every stream is applied"}},
		{"a cycle", func() {
			b, err := os.ReadFile(v2)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Dir(v2), "tandem.yaml", strings.Replace(string(b), "    plain-names: true", "    plain-names: true\n    after: [reviews]", 1))
		}, []string{"migrate", v2, db}, cli.ExitUsage, []string{"cycle: core after reviews after core"}},
		{"--contract with a directory", nil, []string{"migrate", filepath.Join(dir, "v2", "migrations"), db, "--contract"}, cli.ExitUsage, []string{"--contract is for a release description"}},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		code, out := tandem(t, s.args...)
		if code != s.wantCode {
			t.Errorf("%s: exit %d, want %d\n%s", s.name, code, s.wantCode, out)
		}
		for _, w := range s.wantOut {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output does not contain %q:\n%s", s.name, w, out)
			}
		}
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var cols string
	if err := conn.QueryRow(context.Background(), `SELECT string_agg(column_name, ' ' ORDER BY ordinal_position)
		FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'item_views'`).Scan(&cols); err != nil {
		t.Fatal(err)
	}
	if cols != "item_id viewed_at" {
		t.Errorf("item_views after v2: %s", cols)
	}
}
