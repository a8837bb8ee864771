package lint

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

// LoadCatalog reads the schema of a live database: tables with their sizes, columns and
// types, constraints and whether they are validated, indexes, enum types and the volatility
// of every function. Lint then judges the first migration against the real schema.
func LoadCatalog(ctx context.Context, databaseURL string) (*Catalog, error) {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("connect to read the catalog: %w", err)
	}
	defer conn.Close(ctx)
	c := NewCatalog()
	c.live = true
	for _, step := range []struct {
		what string
		load func(context.Context, *pgx.Conn, *Catalog) error
	}{
		{"tables", loadTables},
		{"columns", loadColumns},
		{"constraints", loadConstraints},
		{"indexes", loadIndexes},
		{"functions", loadFunctions},
		{"enums", loadEnums},
		{"views' dependencies", loadViews},
		{"triggers", loadTriggers},
		{"TimeZone", loadTimeZone},
	} {
		if err := step.load(ctx, conn, c); err != nil {
			return nil, fmt.Errorf("read %s from the catalog: %w", step.what, err)
		}
	}
	return c, nil
}

const userSchemas = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'`

func loadTables(ctx context.Context, conn *pgx.Conn, c *Catalog) error {
	rows, err := conn.Query(ctx, `
		SELECT n.nspname, c.relname, c.relkind::text, greatest(c.reltuples, 0)::bigint,
		       CASE WHEN c.relkind IN ('r', 'p', 'm') THEN pg_total_relation_size(c.oid) ELSE -1 END
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p', 'm', 'v', 'f') AND `+userSchemas)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var schema, name, kind string
		var tuples, bytes int64
		if err := rows.Scan(&schema, &name, &kind, &tuples, &bytes); err != nil {
			return err
		}
		t := &table{schema: schema, name: name, kind: "table", columns: map[string]*column{},
			constraints: map[string]*constraint{}, createdFile: -1, rows: tuples, bytes: bytes, sizeKnown: bytes >= 0}
		switch kind {
		case "p":
			t.partitioned = true
		case "m":
			t.kind = "matview"
		case "v":
			t.kind = "view"
		}
		c.tables[qualify(schema, name)] = t
	}
	return rows.Err()
}

func loadColumns(ctx context.Context, conn *pgx.Conn, c *Catalog) error {
	rows, err := conn.Query(ctx, `
		SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
		FROM pg_attribute a
		JOIN pg_class c ON c.oid = a.attrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'm', 'v', 'f') AND `+userSchemas)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var schema, rel, name, typ string
		var notNull bool
		if err := rows.Scan(&schema, &rel, &name, &typ, &notNull); err != nil {
			return err
		}
		t := c.tables[qualify(schema, rel)]
		if t == nil {
			continue
		}
		t.columns[name] = &column{name: name, typ: parseTypeString(typ), notNull: notNull}
	}
	return rows.Err()
}

// parseTypeString turns format_type() output into a canonical colType.
func parseTypeString(s string) colType {
	tree, err := pgtree.Parse("SELECT NULL::" + s)
	if err != nil || len(tree.Stmts) != 1 {
		return colType{}
	}
	sel := tree.Stmts[0].Stmt.GetSelectStmt()
	if sel == nil || len(sel.TargetList) != 1 {
		return colType{}
	}
	tc := sel.TargetList[0].GetResTarget().GetVal().GetTypeCast()
	if tc == nil {
		return colType{}
	}
	return typeOf(tc.TypeName)
}

func loadConstraints(ctx context.Context, conn *pgx.Conn, c *Catalog) error {
	rows, err := conn.Query(ctx, `
		SELECT n.nspname, c.relname, con.conname, pg_get_constraintdef(con.oid)
		FROM pg_constraint con
		JOIN pg_class c ON c.oid = con.conrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE `+userSchemas)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var schema, rel, name, def string
		if err := rows.Scan(&schema, &rel, &name, &def); err != nil {
			return err
		}
		t := c.tables[qualify(schema, rel)]
		if t == nil {
			continue
		}
		sql := "ALTER TABLE x ADD CONSTRAINT " + pgx.Identifier{name}.Sanitize() + " " + def
		tree, err := pgtree.Parse(sql)
		if err != nil || len(tree.Stmts) != 1 {
			continue // a constraint form the parser does not know: leave it out
		}
		for _, cmd := range tree.Stmts[0].Stmt.GetAlterTableStmt().GetCmds() {
			if con := cmd.GetAlterTableCmd().GetDef().GetConstraint(); con != nil {
				c.addConstraint(t, con, nil, false, -1)
				if cs := t.constraints[name]; cs != nil && !strings.Contains(def, "NOT VALID") {
					cs.validated = true
				}
			}
		}
	}
	return rows.Err()
}

func loadIndexes(ctx context.Context, conn *pgx.Conn, c *Catalog) error {
	rows, err := conn.Query(ctx, `
		SELECT n.nspname, i.relname, t.relname, x.indisunique
		FROM pg_index x
		JOIN pg_class i ON i.oid = x.indexrelid
		JOIN pg_class t ON t.oid = x.indrelid
		JOIN pg_namespace n ON n.oid = i.relnamespace
		WHERE `+userSchemas)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var schema, name, tbl string
		var unique bool
		if err := rows.Scan(&schema, &name, &tbl, &unique); err != nil {
			return err
		}
		c.indexes[qualify(schema, name)] = &index{name: name, table: qualify(schema, tbl), unique: unique, createdFile: -1}
	}
	return rows.Err()
}

func loadFunctions(ctx context.Context, conn *pgx.Conn, c *Catalog) error {
	rows, err := conn.Query(ctx, `SELECT proname, max(provolatile::text) FROM pg_proc GROUP BY proname`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var name, vol string
		if err := rows.Scan(&name, &vol); err != nil {
			return err
		}
		// max() over 'i' < 's' < 'v' keeps the most volatile overload.
		switch vol {
		case "i":
			c.functions[name] = volImmutable
		case "s":
			c.functions[name] = volStable
		default:
			c.functions[name] = volVolatile
		}
	}
	return rows.Err()
}

func loadEnums(ctx context.Context, conn *pgx.Conn, c *Catalog) error {
	rows, err := conn.Query(ctx, `SELECT typname FROM pg_type WHERE typtype = 'e'`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		c.enums[name] = -1
	}
	return rows.Err()
}

// loadTimeZone reads the TimeZone a new session of this database gets: it decides whether
// timestamp to timestamptz changes rewrite the table.
func loadTimeZone(ctx context.Context, conn *pgx.Conn, c *Catalog) error {
	var tz string
	if err := conn.QueryRow(ctx, `SELECT current_setting('TimeZone')`).Scan(&tz); err != nil {
		return err
	}
	c.timeZone = classifyTimeZone(tz)
	return nil
}

// loadViews reads what each view and materialized view reads: the relations, and the
// columns of each, its query depends on (pg_depend of its rewrite rule).
func loadViews(ctx context.Context, conn *pgx.Conn, c *Catalog) error {
	rows, err := conn.Query(ctx, `
		SELECT DISTINCT n.nspname, v.relname, tn.nspname, t.relname, coalesce(a.attname::text, '')
		FROM pg_rewrite r
		JOIN pg_class v ON v.oid = r.ev_class
		JOIN pg_namespace n ON n.oid = v.relnamespace
		JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass
		JOIN pg_class t ON t.oid = d.refobjid AND t.oid <> v.oid
		JOIN pg_namespace tn ON tn.oid = t.relnamespace
		LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid AND d.refobjsubid > 0
		WHERE v.relkind IN ('v', 'm') AND `+userSchemas+`
		ORDER BY 1, 2, 3, 4, 5`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var schema, view, tschema, table, col string
		if err := rows.Scan(&schema, &view, &tschema, &table, &col); err != nil {
			return err
		}
		k := qualify(schema, view)
		v := c.views[k]
		if v == nil {
			v = &viewInfo{reads: map[string][]string{}}
			c.views[k] = v
		}
		tk := qualify(tschema, table)
		cols := v.reads[tk]
		if cols == nil {
			cols = []string{}
		}
		if col != "" {
			cols = append(cols, col)
		}
		v.reads[tk] = cols
	}
	return rows.Err()
}

// loadTriggers reads the user triggers and the functions they call.
func loadTriggers(ctx context.Context, conn *pgx.Conn, c *Catalog) error {
	rows, err := conn.Query(ctx, `
		SELECT n.nspname, t.relname, tg.tgname, p.proname
		FROM pg_trigger tg
		JOIN pg_class t ON t.oid = tg.tgrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace
		JOIN pg_proc p ON p.oid = tg.tgfoid
		WHERE NOT tg.tgisinternal AND `+userSchemas+`
		ORDER BY 1, 2, 3`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var schema, table, name, fn string
		if err := rows.Scan(&schema, &table, &name, &fn); err != nil {
			return err
		}
		c.triggers = append(c.triggers, trigger{name: name, table: qualify(schema, table), function: strings.ToLower(fn)})
	}
	return rows.Err()
}
