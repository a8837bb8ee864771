package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// soakCases, when set, makes TestPropertyOperationOrders run that many random migrations
// (with a seed taken from the clock, printed for replay) instead of the fixed-seed set of
// the default run: go test ./migrate -run TestPropertyOperationOrders -soak 500.
var (
	soakCases = flag.Int("soak", 0, "run this many random migrations in TestPropertyOperationOrders (0: the default fixed-seed set)")
	soakSeed  = flag.Uint64("soak-seed", 0, "seed of the -soak run (0: from the clock)")
)

// propCol is a column of the property test's model of the table, as the new version
// sees it after the operations generated so far.
type propCol struct {
	name     string
	typ      string // int, bigint, text or varchar(200)
	nullable bool
}

// propModel is the generator's view of the table while it writes a migration.
type propModel struct {
	table string
	cols  []*propCol
	seq   int
}

func (m *propModel) fresh(prefix string) string {
	m.seq++
	return fmt.Sprintf("%s%d", prefix, m.seq)
}

func (m *propModel) clone() *propModel {
	c := &propModel{table: m.table, seq: m.seq}
	for _, col := range m.cols {
		x := *col
		c.cols = append(c.cols, &x)
	}
	return c
}

func (m *propModel) pick(r *rand.Rand) *propCol {
	if len(m.cols) == 0 {
		return nil
	}
	return m.cols[r.IntN(len(m.cols))]
}

// propOp generates one random operation that is valid against m, applies it to m, and
// returns it as pgroll JSON; "" when the model offers nothing for the chosen kind.
func propOp(r *rand.Rand, m *propModel) string {
	op := func(kind string, body map[string]any) string {
		data, _ := json.Marshal(map[string]any{kind: body})
		return string(data)
	}
	switch r.IntN(9) {
	case 0:
		to := m.fresh("t")
		from := m.table
		m.table = to
		return op("rename_table", map[string]any{"from": from, "to": to})
	case 1:
		c := m.pick(r)
		if c == nil {
			return ""
		}
		from := c.name
		c.name = m.fresh("c")
		return op("rename_column", map[string]any{"table": m.table, "from": from, "to": c.name})
	case 2:
		c := m.pick(r)
		if c == nil {
			return ""
		}
		body := map[string]any{"table": m.table, "column": c.name}
		from := c.name
		if r.IntN(3) == 0 {
			c.name = m.fresh("c")
			body["name"] = c.name
		}
		// up is written in the old names, down in the new ones.
		to, back := map[string]string{"int": "bigint", "bigint": "int", "text": "varchar(200)", "varchar(200)": "text"}[c.typ], c.typ
		body["type"], body["up"], body["down"] = to, qi(from)+"::"+to, qi(c.name)+"::"+back
		c.typ = to
		return op("alter_column", body)
	case 3:
		name := m.fresh("c")
		nullable := r.IntN(2) == 0
		col := map[string]any{"name": name, "type": "text", "nullable": nullable}
		body := map[string]any{"table": m.table, "column": col}
		if !nullable {
			body["up"] = "'filled'"
		}
		m.cols = append(m.cols, &propCol{name: name, typ: "text", nullable: nullable})
		return op("add_column", body)
	case 4:
		if len(m.cols) < 2 {
			return ""
		}
		i := r.IntN(len(m.cols))
		c := m.cols[i]
		m.cols = append(m.cols[:i], m.cols[i+1:]...)
		return op("drop_column", map[string]any{"table": m.table, "column": c.name})
	case 5:
		c := m.pick(r)
		if c == nil {
			return ""
		}
		return op("create_constraint", map[string]any{"table": m.table, "name": m.fresh("chk"), "type": "check",
			"columns": []string{c.name}, "check": "length(" + qi(c.name) + "::text) < 100"})
	case 6:
		c := m.pick(r)
		if c == nil {
			return ""
		}
		return op("create_index", map[string]any{"table": m.table, "name": m.fresh("idx"), "columns": []string{c.name}})
	case 7:
		c := m.pick(r)
		if c == nil || !c.nullable {
			return ""
		}
		c.nullable = false
		return op("alter_column", map[string]any{"table": m.table, "column": c.name, "nullable": false,
			"up": "coalesce(" + qi(c.name) + ", " + propValue(c.typ, 0) + ")", "down": qi(c.name)})
	default:
		c := m.pick(r)
		if c == nil {
			return ""
		}
		return op("create_constraint", map[string]any{"table": m.table, "name": m.fresh("uq"), "type": "unique",
			"columns": []string{c.name}})
	}
}

// propValue is a literal of type typ, distinct for each k.
func propValue(typ string, k int) string {
	if typ == "int" || typ == "bigint" {
		return fmt.Sprint(100000 + k)
	}
	return fmt.Sprintf("'v%d'", 100000+k)
}

// propMigration generates a migration of 2–4 operations on one table; it returns the
// migration, the model before it and the model after it.
func propMigration(r *rand.Rand) (doc string, before, after *propModel) {
	before = &propModel{table: "t", cols: []*propCol{
		{name: "a", typ: "int"}, {name: "b", typ: "text", nullable: true}, {name: "c", typ: "bigint", nullable: true},
	}}
	after = before.clone()
	n := 2 + r.IntN(3)
	var ops []string
	for len(ops) < n {
		if o := propOp(r, after); o != "" {
			ops = append(ops, o)
		}
	}
	return `{"operations": [` + strings.Join(ops, ", ") + `]}`, before, after
}

// propWrite inserts a row and updates every row through pool, as model m names things,
// and reads the table back.
func propWrite(ctx context.Context, pool *pgxpool.Pool, m *propModel, k int) error {
	var names, values, sets []string
	for _, c := range m.cols {
		names = append(names, qi(c.name))
		values = append(values, propValue(c.typ, k))
		sets = append(sets, qi(c.name)+" = "+qi(c.name))
	}
	stmts := []string{
		"INSERT INTO " + qi(m.table) + " (" + strings.Join(names, ", ") + ") VALUES (" + strings.Join(values, ", ") + ")",
		"UPDATE " + qi(m.table) + " SET " + strings.Join(sets, ", ") + " WHERE id % 3 = 0",
		"SELECT count(*) FROM " + qi(m.table),
	}
	for _, s := range stmts {
		if _, err := pool.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// TestPropertyOperationOrders generates migrations of 2–4 random operations on one table
// and its columns (renames of the table and of columns, type changes, added and dropped
// columns, check and unique constraints, indexes, NOT NULL) and takes each through start
// → both versions read and write → rollback → start → both versions → complete on a real
// PostgreSQL. Any refusal of a valid sequence, any error of a version's statement, and any
// error (or panic) in rollback or complete is a failure. The default run uses a fixed
// seed; -soak N runs N migrations from a seed printed for replay with -soak-seed.
func TestPropertyOperationOrders(t *testing.T) {
	seed, cases := uint64(20261130), 12
	if *soakCases > 0 {
		cases = *soakCases
		seed = *soakSeed
		if seed == 0 {
			seed = rand.Uint64()
		}
		t.Logf("soak: %d migrations, -soak-seed %d", cases, seed)
	}
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range cases {
		doc, before, after := propMigration(r)
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Logf("migration: %s", doc)
			ctx := context.Background()
			e := newEnv(t)
			e.exec(`CREATE TABLE t (id serial PRIMARY KEY, a int NOT NULL DEFAULT 0, b text, c bigint)`)
			e.exec(`INSERT INTO t (a, b, c) SELECT i, 'b' || i, i FROM generate_series(1, 50) i`)
			mig := e.parse(`{"name": "p", ` + doc[1:])
			old, nu := e.version(""), e.version("p")
			k := 0
			both := func(stage string) {
				t.Helper()
				k++
				if err := propWrite(ctx, old, before, k); err != nil {
					t.Fatalf("%s: old version: %v", stage, err)
				}
				k++
				if err := propWrite(ctx, nu, after, k); err != nil {
					t.Fatalf("%s: new version: %v", stage, err)
				}
			}
			if err := e.m.Start(ctx, mig); err != nil {
				t.Fatalf("start: %v", err)
			}
			both("after start")
			if err := e.m.Rollback(ctx); err != nil {
				t.Fatalf("rollback: %v", err)
			}
			e.assertNoLeftovers()
			k++
			if err := propWrite(ctx, old, before, k); err != nil {
				t.Fatalf("after rollback: old version: %v", err)
			}
			if err := e.m.Start(ctx, mig); err != nil {
				t.Fatalf("start again: %v", err)
			}
			both("after the second start")
			old.Close()
			if err := e.m.Complete(ctx); err != nil {
				var pe *PanicError
				if errors.As(err, &pe) {
					t.Fatalf("complete panicked: %v\n%s", err, pe.Stack)
				}
				t.Fatalf("complete: %v", err)
			}
			e.assertNoLeftovers("public_p")
			k++
			if err := propWrite(ctx, nu, after, k); err != nil {
				t.Fatalf("after complete: new version: %v", err)
			}
			// The base schema now has the new version's shape.
			base := e.version("")
			k++
			if err := propWrite(ctx, base, after, k); err != nil {
				t.Fatalf("after complete: base schema: %v", err)
			}
		})
	}
}
