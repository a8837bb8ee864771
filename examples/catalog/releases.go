package catalog

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-pg/tandem/lifecycle"
	"github.com/tandem-pg/tandem/migrate"
)

// Releases are the example's releases, oldest first. Each one's schema is made by Tandem
// migrations (ReleaseFiles) and each one's code reads and writes only through its own
// version schema:
//
//	v1  items(id, name, price_cents integer, sku, created_at), blobs, tasks
//	v2  renames items.name to title; adds label NOT NULL, computed from title and
//	    price_cents; price_cents becomes bigint; the code stops writing sku
//	v3  drops sku; adds the check length(title) <= 200
var Releases = []string{"v1", "v2", "v3"}

//go:embed releases
var releaseFS embed.FS

// ReleaseFiles holds the releases' files: <v>/tandem.yaml, the release description that
// `tandem upgrade` reads, and <v>/migrations/*.json, every migration up to and including
// release v in pgroll's format (`tandem migrate` skips those already applied, so one
// directory takes a database of any older release to v). Materialise a release with
// os.CopyFS(dir, ReleaseFiles) and point Tandem at dir/<v>.
var ReleaseFiles fs.FS = mustSub(releaseFS, "releases")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // dir is a constant embedded above
	}
	return sub
}

// queries are the SQL one release's code runs; every release has its own, over its own
// version schema. All take and return the same values, so the HTTP API is the same in
// every release.
type queries struct {
	// getItem takes an id and returns id, name, price_cents.
	getItem string
	// listItems takes a limit and returns rows of id, name, price_cents.
	listItems string
	// addItem takes a name and a price in cents and returns the new id.
	addItem string
	// maxName bounds the length of a name, in characters; 0 means no bound.
	maxName int
}

// releaseSQL is the one place where the releases' SQL differs.
var releaseSQL = map[string]queries{
	"v1": {
		getItem:   `SELECT id, name, price_cents FROM items WHERE id = $1`,
		listItems: `SELECT id, name, price_cents FROM items ORDER BY id LIMIT $1`,
		addItem: `INSERT INTO items (name, price_cents, sku) VALUES ($1, $2, ` + skuExpr("$1::text") + `)
			RETURNING id`,
	},
	"v2": {
		getItem:   `SELECT id, title, price_cents FROM items WHERE id = $1`,
		listItems: `SELECT id, title, price_cents FROM items ORDER BY id LIMIT $1`,
		addItem:   v2AddItem,
	},
	"v3": {
		getItem:   `SELECT id, title, price_cents FROM items WHERE id = $1`,
		listItems: `SELECT id, title, price_cents FROM items ORDER BY id LIMIT $1`,
		addItem:   v2AddItem,
		maxName:   200, // the check 03_2_title_length adds
	},
}

// v2AddItem computes label as migration 02_2_label's up does for the rows v1 writes.
const v2AddItem = `INSERT INTO items (title, price_cents, label)
	VALUES ($1, $2, $1::text || ' (' || $2::bigint || ' cents)') RETURNING id`

// skuExpr is the SKU release v1 gives the item named by expr.
func skuExpr(expr string) string { return `'SKU-' || upper(left(md5(` + expr + `), 10))` }

// SampleBlob is the name of the blob Seed writes, served at /content/sample.
const SampleBlob = "sample"

// Seed writes rows items and the sample blob through db's search_path, with release
// v1's column names: pass a pool pinned to v1's version schema, or to the base schema
// after v1 was completed. It is set-based (a million rows take seconds), idempotent
// (items are written only while the table is empty, the blob only when missing) and
// safe to run from several processes at once.
func Seed(ctx context.Context, db lifecycle.DB, rows int) error {
	if rows < 0 {
		return fmt.Errorf("catalog seed: rows must be >= 0, not %d", rows)
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("catalog seed: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	stmts := []struct {
		sql  string
		args []any
	}{
		// Two seeders wait for each other; the second one's statements then see the rows.
		{`SELECT pg_advisory_xact_lock(hashtextextended('tandem.examples.catalog.seed', 0))`, nil},
		{`INSERT INTO items (name, price_cents, sku)
			SELECT 'item ' || g, (g * 37) % 10000, ` + skuExpr("'item ' || g") + `
			FROM generate_series(1, $1::bigint) g
			WHERE NOT EXISTS (SELECT FROM items)`, []any{rows}},
		{`INSERT INTO blobs (name, data)
			SELECT $1, decode(repeat('74616e64656d20', ` + strconv.Itoa(BlobSize/7+1) + `), 'hex')
			WHERE NOT EXISTS (SELECT FROM blobs WHERE name = $1)`, []any{SampleBlob}},
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s.sql, s.args...); err != nil {
			return fmt.Errorf("catalog seed: %w (are release v1's migrations applied? see catalog.ReleaseFiles)", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("catalog seed: %w", err)
	}
	return nil
}

// Setup brings the database pool is connected to to release v1, completed, with Tandem's
// engine (in schema public, state schema "tandem"), and seeds 1000 items. It is for runs
// that never upgrade (`tandem prove` without an upgrade); the instances may then run
// unpinned, on the base schema.
func Setup(ctx context.Context, pool *pgxpool.Pool) error {
	dir, err := os.MkdirTemp("", "catalog-v1-")
	if err != nil {
		return fmt.Errorf("catalog setup: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := os.CopyFS(dir, ReleaseFiles); err != nil {
		return fmt.Errorf("catalog setup: %w", err)
	}
	migs, err := migrate.ReadDir(path.Join(dir, "v1", "migrations"))
	if err != nil {
		return fmt.Errorf("catalog setup: %w", err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("catalog setup: %w", err)
	}
	pc := conn.Hijack()
	m, err := migrate.New(ctx, pc, migrate.Options{})
	if err != nil {
		pc.Close(context.WithoutCancel(ctx)) //nolint:errcheck // the error above says more
		return fmt.Errorf("catalog setup: %w", err)
	}
	defer m.Close(context.WithoutCancel(ctx)) //nolint:errcheck // nothing to do about it
	if _, err := m.Migrate(ctx, migs, true); err != nil {
		return fmt.Errorf("catalog setup: apply release v1: %w", err)
	}
	return Seed(ctx, pool, 1000)
}
