package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/tandem-pg/tandem/internal/pgserver"
	"github.com/tandem-pg/tandem/migrate"
)

// demoMigration is the sample migration the demo applies: a rename the old version must
// not notice, and a NOT NULL column computed for the rows the old version keeps writing.
const demoMigration = `{
  "name": "02_price_and_title",
  "operations": [
    {"rename_column": {"table": "items", "from": "name", "to": "title"}},
    {"add_column": {"table": "items", "up": "qty * 1.25",
                    "column": {"name": "price", "type": "numeric(10,2)", "comment": "unit price"}}}
  ]
}`

func newDemoCmd() *cobra.Command {
	var rows int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Show an expand/contract migration on a throwaway PostgreSQL",
		Long: `Demo starts its own throwaway PostgreSQL (initdb into a temporary directory, on
127.0.0.1), creates a table, and applies a sample migration that renames a column and adds
a NOT NULL column, showing the old and the new version of the app both working while the
migration is in progress. Then it completes the migration and removes the server.`,
		Args: argsErr(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), rows)
		},
	}
	cmd.Flags().IntVar(&rows, "rows", 100_000, "rows in the sample table")
	return cmd
}

func runDemo(ctx context.Context, out io.Writer, rows int) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	step := func(title string) { fmt.Fprintf(out, "\n== %s\n", title) }

	step("Starting a throwaway PostgreSQL")
	srv, err := pgserver.Start(ctx, pgserver.Options{})
	if err != nil {
		return err
	}
	defer srv.Stop()
	url := srv.URL("postgres")
	say("listening on 127.0.0.1:%d (data in %s, removed at exit)", srv.Port(), srv.Dir())

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	step("Version 1 of the app: table items")
	if _, err := conn.Exec(ctx, `CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, qty int NOT NULL)`); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `INSERT INTO items (name, qty) SELECT 'item ' || i, i % 100 FROM generate_series(1, $1::int) i`, rows); err != nil {
		return err
	}
	say("created items(id, name, qty) with %d rows", rows)

	mig, err := migrate.Parse("demo.json", "demo", []byte(demoMigration))
	if err != nil {
		return err
	}
	m, err := migrate.Open(ctx, url, migrate.Options{Progress: newProgressPrinter(out).print})
	if err != nil {
		return err
	}
	defer m.Close(context.Background())

	step("tandem start: the migration")
	say("%s", demoMigration)
	t0 := time.Now()
	if err := m.Start(ctx, mig); err != nil {
		return err
	}
	vs := migrate.VersionSchema("public", mig.Name)
	say("started in %s; the new version reads and writes through schema %s", time.Since(t0).Round(time.Millisecond), vs)

	oldConn, err := pgx.Connect(ctx, url) // the old version: search_path = public
	if err != nil {
		return err
	}
	defer oldConn.Close(context.Background())
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return err
	}
	migrate.PinConnConfig(cfg, vs)
	newConn, err := pgx.ConnectConfig(ctx, cfg) // the new version
	if err != nil {
		return err
	}
	defer newConn.Close(context.Background())

	step("Both versions work at once")
	run := func(who string, c *pgx.Conn, sql string) error {
		say("%s> %s", who, sql)
		// The simple protocol returns every value as text, ready to print.
		rows, err := c.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			return fmt.Errorf("%s: %w", who, err)
		}
		defer rows.Close()
		for rows.Next() {
			var cells []string
			for i, v := range rows.RawValues() {
				cells = append(cells, fmt.Sprintf("%s=%s", rows.FieldDescriptions()[i].Name, v))
			}
			say("    %s", strings.Join(cells, " "))
		}
		return rows.Err()
	}
	for _, s := range []struct{ who, sql string }{
		{"v1", "INSERT INTO items (name, qty) VALUES ('written by v1', 8) RETURNING id, name, qty"},
		{"v2", "INSERT INTO items (title, qty, price) VALUES ('written by v2', 3, 4.99) RETURNING id, title, qty, price"},
		{"v1", "SELECT id, name, qty FROM items WHERE name LIKE 'written%' ORDER BY id"},
		{"v2", "SELECT id, title, qty, price FROM items WHERE title LIKE 'written%' ORDER BY id"},
	} {
		c := oldConn
		if s.who == "v2" {
			c = newConn
		}
		if err := run(s.who, c, s.sql); err != nil {
			return err
		}
	}
	say("v1 still sees 'name' and no price; v2 sees 'title' and a price computed for v1's row (8 * 1.25).")

	step("tandem complete: the old version is gone")
	oldConn.Close(ctx)
	if err := m.Complete(ctx); err != nil {
		return err
	}
	if err := run("v2", newConn, "SELECT id, title, qty, price FROM items ORDER BY id DESC LIMIT 2"); err != nil {
		return err
	}
	var def string
	if err := conn.QueryRow(ctx, `SELECT string_agg(column_name || ' ' || data_type || CASE WHEN is_nullable = 'NO' THEN ' not null' ELSE '' END, ', ' ORDER BY ordinal_position)
		FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'items'`).Scan(&def); err != nil {
		return err
	}
	say("physical table now: items(%s)", def)
	step("Done: the throwaway server is stopped and removed")
	return nil
}
