package lint

import (
	"slices"
	"sort"
	"strings"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

// What DROP ... CASCADE drops with the object it names, as far as the catalog knows: the
// views that read a dropped table, view or column (and the views that read those), the
// foreign keys of other tables that reference a dropped table or column, the columns of a
// dropped type, and the triggers that call a dropped function. PostgreSQL takes ACCESS
// EXCLUSIVE on the table of each (TestStatementLocksMatchServer checks it).

// viewInfo is what the catalog knows of a view's (or materialized view's) query.
type viewInfo struct {
	// sql is the CREATE statement, parsed on demand by reads (the lean parse leaves a
	// view's query out, and most views are never dropped with CASCADE).
	sql string
	// reads maps the relations the query reads to the columns it names in them; "*"
	// stands for every column. Nil until known.
	reads map[string][]string
	// renamed is the length of the catalog's rename log when the view was created: the
	// renames after it apply to the names in sql.
	renamed int
}

// rename is a table's rename (column empty; to is its new key) or a column's (to is its
// new name).
type rename struct {
	table, column, to string
}

// trigger is a trigger the catalog knows: its table and the function it calls.
type trigger struct {
	name, table, function string // function: lower-case name, without schema
}

// depKind is the kind of object a CASCADE drops along.
type depKind int

const (
	depView depKind = iota
	depMatview
	depForeignKey
	depColumn
	depTrigger
)

// dependent is one object that DROP ... CASCADE drops along. table is the catalog key of
// the table (or view) it locks; name is the constraint's, column's or trigger's name.
type dependent struct {
	kind        depKind
	table, name string
}

// String names the object, e.g. "view user_view" or "foreign key post_creator_fkey of post".
func (d dependent) String() string {
	switch d.kind {
	case depView:
		return "view " + displayName(d.table)
	case depMatview:
		return "materialized view " + displayName(d.table)
	case depForeignKey:
		return "foreign key " + d.name + " of " + displayName(d.table)
	case depColumn:
		return "column " + displayName(d.table) + "." + d.name
	}
	return "trigger " + d.name + " on " + displayName(d.table)
}

// dropSQL is the statement that drops the object on its own.
func (d dependent) dropSQL() string {
	switch d.kind {
	case depView:
		return "DROP VIEW " + qname(d.table) + ";"
	case depMatview:
		return "DROP MATERIALIZED VIEW " + qname(d.table) + ";"
	case depForeignKey:
		return "ALTER TABLE " + qname(d.table) + " DROP CONSTRAINT " + ident(d.name) + ";"
	case depColumn:
		return "ALTER TABLE " + qname(d.table) + " DROP COLUMN " + ident(d.name) + ";"
	}
	return "DROP TRIGGER " + ident(d.name) + " ON " + qname(d.table) + ";"
}

// recordView remembers the text of the statement that creates view key.
func (c *Catalog) recordView(key, sql string) {
	c.views[key] = &viewInfo{sql: sql, renamed: len(c.renames)}
}

// viewReads returns what view key reads (see viewInfo.reads), parsing its text the first
// time.
func (c *Catalog) viewReads(key string) map[string][]string {
	v := c.views[key]
	if v == nil {
		return nil
	}
	if v.reads == nil {
		v.reads = queryReads(v.sql)
		// PostgreSQL follows the renames of what a view reads; so does the catalog.
		for _, r := range c.renames[min(v.renamed, len(c.renames)):] {
			cols, ok := v.reads[r.table]
			switch {
			case !ok:
			case r.column == "":
				delete(v.reads, r.table)
				v.reads[r.to] = cols
			default:
				v.reads[r.table] = slices.Clone(cols)
				if i := slices.Index(cols, r.column); i >= 0 {
					v.reads[r.table][i] = r.to
				}
			}
		}
	}
	return v.reads
}

// queryReads parses a CREATE VIEW (or CREATE MATERIALIZED VIEW) statement and returns the
// relations its query reads, each with every column name the query names (which column
// belongs to which relation is not resolved: a view depends on a column when it names it,
// or names *).
func queryReads(sql string) map[string][]string {
	reads := map[string][]string{}
	tree, err := pgtree.Parse(sql)
	if err != nil || len(tree.Stmts) != 1 {
		return reads
	}
	n := tree.Stmts[0].Stmt
	query := n.GetViewStmt().GetQuery()
	if query == nil {
		query = n.GetCreateTableAsStmt().GetQuery()
	}
	var rels, cols []string
	pgtree.Walk(query, func(n *pgtree.Node) bool {
		switch {
		case n.GetRangeVar() != nil:
			if k := relKey(n.GetRangeVar()); !slices.Contains(rels, k) {
				rels = append(rels, k)
			}
		case n.GetColumnRef() != nil:
			fields := n.GetColumnRef().Fields
			if len(fields) == 0 {
				break
			}
			last := fields[len(fields)-1]
			name := "*"
			if s := last.GetString_(); s != nil {
				name = s.Sval
			}
			if !slices.Contains(cols, name) {
				cols = append(cols, name)
			}
		}
		return true
	})
	for _, r := range rels {
		reads[r] = cols
	}
	return reads
}

// cascadeDependents returns what the statement drops along with the objects it names
// because of CASCADE (see the top of this file), in a stable order, or nil when it has no
// CASCADE.
func (c *Catalog) cascadeDependents(n *pgtree.Node) []dependent {
	if !hasCascade(n) {
		return nil
	}
	var out []dependent
	add := func(d dependent) {
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	// views adds the views that read relation key (column col, or any column when col is
	// ""), and the views that read those.
	var views func(key, col string)
	views = func(key, col string) {
		names := make([]string, 0, len(c.views))
		for v := range c.views {
			names = append(names, v)
		}
		sort.Strings(names)
		for _, v := range names {
			cols, ok := c.viewReads(v)[key]
			if !ok || col != "" && !slices.Contains(cols, col) && !slices.Contains(cols, "*") {
				continue
			}
			d := dependent{kind: depView, table: v}
			if t := c.tables[v]; t != nil && t.kind == "matview" {
				d.kind = depMatview
			}
			if slices.Contains(out, d) {
				continue
			}
			add(d)
			views(v, "")
		}
	}
	// foreignKeys adds the foreign keys of other tables that reference key (its column col,
	// or any column when col is "").
	foreignKeys := func(key, col string) {
		for _, tk := range sortedKeys(c.tables) {
			if tk == key {
				continue
			}
			t := c.tables[tk]
			for _, name := range sortedKeys(t.constraints) {
				con := t.constraints[name]
				if con.kind != conForeign || con.refTable != key || col != "" && !c.referencesColumn(con, col) {
					continue
				}
				add(dependent{kind: depForeignKey, table: tk, name: name})
			}
		}
	}
	switch {
	case n.GetDropStmt() != nil:
		s := n.GetDropStmt()
		switch s.RemoveType {
		case pgtree.ObjectType_OBJECT_TABLE, pgtree.ObjectType_OBJECT_VIEW, pgtree.ObjectType_OBJECT_MATVIEW:
			named := dropKeys(s)
			for _, key := range named {
				views(key, "")
				foreignKeys(key, "")
			}
			// What the statement names itself is dropped anyway, not along.
			out = slices.DeleteFunc(out, func(d dependent) bool { return slices.Contains(named, d.table) })
		case pgtree.ObjectType_OBJECT_TYPE, pgtree.ObjectType_OBJECT_DOMAIN:
			for _, o := range s.Objects {
				names := nameList(o.GetTypeName().GetNames())
				if len(names) == 0 {
					continue
				}
				typ := strings.ToLower(names[len(names)-1])
				for _, tk := range sortedKeys(c.tables) {
					t := c.tables[tk]
					if t.kind != "table" {
						continue
					}
					for _, cn := range sortedKeys(t.columns) {
						if t.columns[cn].typ.name != typ {
							continue
						}
						add(dependent{kind: depColumn, table: tk, name: cn})
						views(tk, cn)
					}
				}
			}
		case pgtree.ObjectType_OBJECT_FUNCTION, pgtree.ObjectType_OBJECT_PROCEDURE, pgtree.ObjectType_OBJECT_ROUTINE:
			for _, o := range s.Objects {
				names := nameList(o.GetObjectWithArgs().GetObjname())
				if len(names) == 0 {
					continue
				}
				fn := strings.ToLower(names[len(names)-1])
				for _, tr := range c.triggers {
					if tr.function == fn {
						add(dependent{kind: depTrigger, table: tr.table, name: tr.name})
					}
				}
			}
		}
	case n.GetAlterTableStmt() != nil:
		s := n.GetAlterTableStmt()
		key := relKey(s.Relation)
		for _, x := range s.Cmds {
			cmd := x.GetAlterTableCmd()
			if cmd == nil || cmd.Subtype != pgtree.AlterTableType_AT_DropColumn || cmd.Behavior != pgtree.DropBehavior_DROP_CASCADE {
				continue
			}
			views(key, cmd.Name)
			foreignKeys(key, cmd.Name)
		}
	}
	return out
}

// hasCascade reports whether the statement is a DROP ... CASCADE or an ALTER TABLE with a
// DROP COLUMN ... CASCADE.
func hasCascade(n *pgtree.Node) bool {
	if s := n.GetDropStmt(); s != nil {
		return s.Behavior == pgtree.DropBehavior_DROP_CASCADE
	}
	for _, x := range n.GetAlterTableStmt().GetCmds() {
		if cmd := x.GetAlterTableCmd(); cmd != nil && cmd.Subtype == pgtree.AlterTableType_AT_DropColumn && cmd.Behavior == pgtree.DropBehavior_DROP_CASCADE {
			return true
		}
	}
	return false
}

// referencesColumn reports whether foreign key con references column col of its table:
// one of its referenced columns, or of the referenced table's primary key when it names
// none.
func (c *Catalog) referencesColumn(con *constraint, col string) bool {
	if len(con.refKeys) > 0 {
		return slices.Contains(con.refKeys, col)
	}
	if t := c.tables[con.refTable]; t != nil {
		for _, pk := range t.constraints {
			if pk.kind == conPrimary {
				return slices.Contains(pk.keys, col)
			}
		}
	}
	return false
}

// dropDependents removes from the catalog what a statement drops through CASCADE.
func (c *Catalog) dropDependents(deps []dependent) {
	for _, d := range deps {
		switch d.kind {
		case depView, depMatview:
			delete(c.tables, d.table)
			delete(c.views, d.table)
		case depForeignKey:
			if t := c.tables[d.table]; t != nil {
				delete(t.constraints, d.name)
			}
		case depColumn:
			if t := c.tables[d.table]; t != nil {
				delete(t.columns, d.name)
				c.dropColumnConstraints(t, d.name)
			}
		case depTrigger:
			c.triggers = slices.DeleteFunc(c.triggers, func(tr trigger) bool { return tr.name == d.name && tr.table == d.table })
		}
	}
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
