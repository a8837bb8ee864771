package lint

import (
	"slices"
	"strings"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

// Catalog is an in-memory model of the schema: tables, their columns and types,
// constraints (and whether they are validated), indexes, and user functions' volatility.
// Lint replays each statement into it so that later statements are judged against the
// schema as it will be when they run.
type Catalog struct {
	tables    map[string]*table
	indexes   map[string]*index
	functions map[string]volatility
	enums     map[string]int // enum type name -> index of the file that created it
	views     map[string]*viewInfo
	triggers  []trigger
	// renames logs the renames of tables and columns, for the views whose query is read
	// later (see viewInfo).
	renames  []rename
	timeZone tzState // the database's TimeZone setting, when read from a live one
	live     bool    // read from a live database: a table it lacks does not exist
}

// NewCatalog returns an empty catalog.
func NewCatalog() *Catalog {
	return &Catalog{
		tables:    map[string]*table{},
		indexes:   map[string]*index{},
		functions: map[string]volatility{},
		enums:     map[string]int{},
		views:     map[string]*viewInfo{},
	}
}

// Tables returns the number of tables in the catalog.
func (c *Catalog) Tables() int { return len(c.tables) }

// clone returns a deep copy, so that a loaded catalog can be reused across runs.
func (c *Catalog) clone() *Catalog {
	n := NewCatalog()
	for k, t := range c.tables {
		n.tables[k] = t.clone()
	}
	for k, i := range c.indexes {
		ci := *i
		n.indexes[k] = &ci
	}
	for k, v := range c.functions {
		n.functions[k] = v
	}
	for k, v := range c.enums {
		n.enums[k] = v
	}
	for k, v := range c.views {
		cv := *v
		n.views[k] = &cv
	}
	n.triggers = slices.Clone(c.triggers)
	n.renames = slices.Clone(c.renames)
	n.timeZone, n.live = c.timeZone, c.live
	return n
}

type table struct {
	schema, name string
	kind         string // "table", "matview", "view"
	partitioned  bool
	columns      map[string]*column
	constraints  map[string]*constraint
	createdFile  int // index of the file that created it; -1 when it existed before the run
	// maybeExisting marks a table created with IF NOT EXISTS that the linter had not seen and
	// no live catalog could rule out: on an installation being upgraded it usually exists,
	// so it is not treated as new.
	maybeExisting bool
	createdAt     string // file:line of the CREATE
	rows          int64
	bytes         int64 // -1 when unknown
	sizeKnown     bool
}

func (t *table) clone() *table {
	n := *t
	n.columns = make(map[string]*column, len(t.columns))
	for k, c := range t.columns {
		cc := *c
		n.columns[k] = &cc
	}
	n.constraints = make(map[string]*constraint, len(t.constraints))
	for k, c := range t.constraints {
		cc := *c
		n.constraints[k] = &cc
	}
	return &n
}

type column struct {
	name    string
	typ     colType
	notNull bool
}

type conKind int

const (
	conCheck conKind = iota
	conForeign
	conUnique
	conPrimary
	conExclude
	conNotNull
)

type constraint struct {
	name      string
	kind      conKind
	validated bool
	// keys are the columns of a primary key, or the referencing columns of a foreign key.
	keys []string
	// refTable is the catalog key of the table a foreign key references, refKeys the
	// columns it references (none: the primary key).
	refTable string
	refKeys  []string
	// notNullCols are the columns a CHECK constraint proves NOT NULL
	// (CHECK (a IS NOT NULL AND b IS NOT NULL)).
	notNullCols []string
}

type index struct {
	name   string
	table  string // key of the table
	unique bool
	// createdFile is the file that created it; -1 when it existed before the run.
	createdFile int
}

// relKey is the catalog key of a relation: schema.name, with unqualified names in public.
func relKey(rv *pgtree.RangeVar) string {
	if rv == nil {
		return ""
	}
	return qualify(rv.Schemaname, rv.Relname)
}

func qualify(schema, name string) string {
	if schema == "" {
		schema = "public"
	}
	return schema + "." + name
}

// displayName is the name shown to users: public tables unqualified.
func displayName(key string) string {
	return strings.TrimPrefix(key, "public.")
}

func (c *Catalog) table(key string) *table { return c.tables[key] }

// nameList joins a list of String nodes (a qualified name) with dots.
func nameList(nodes []*pgtree.Node) []string {
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		if s := n.GetString_(); s != nil {
			out = append(out, s.Sval)
		}
	}
	return out
}

// apply replays one statement into the catalog. fileIdx identifies the current file, at
// is the statement's file:line.
func (c *Catalog) apply(node *pgtree.Node, fileIdx int, at string) {
	switch {
	case node.GetCreateStmt() != nil:
		c.applyCreate(node.GetCreateStmt(), fileIdx, at)
	case node.GetCreateTableAsStmt() != nil:
		s := node.GetCreateTableAsStmt()
		if s.Into != nil && s.Into.Rel != nil {
			kind := "table"
			if s.Objtype == pgtree.ObjectType_OBJECT_MATVIEW {
				kind = "matview"
			}
			k := relKey(s.Into.Rel)
			if _, ok := c.tables[k]; !ok || !s.IfNotExists {
				c.tables[k] = newTable(s.Into.Rel, kind, fileIdx)
			}
		}
	case node.GetCreateSeqStmt() != nil:
		s := node.GetCreateSeqStmt()
		if s.Sequence != nil {
			k := relKey(s.Sequence)
			if _, ok := c.tables[k]; !ok || !s.IfNotExists {
				t := newTable(s.Sequence, "sequence", fileIdx)
				t.maybeExisting = s.IfNotExists && !c.live
				c.tables[k] = t
			}
		}
	case node.GetViewStmt() != nil:
		s := node.GetViewStmt()
		k := relKey(s.View)
		if _, ok := c.tables[k]; !ok {
			c.tables[k] = newTable(s.View, "view", fileIdx)
		}
	case node.GetAlterTableStmt() != nil:
		c.applyAlter(node.GetAlterTableStmt(), fileIdx)
	case node.GetIndexStmt() != nil:
		s := node.GetIndexStmt()
		if s.Idxname != "" {
			k := qualify(s.Relation.GetSchemaname(), s.Idxname)
			if _, ok := c.indexes[k]; !ok || !s.IfNotExists {
				c.indexes[k] = &index{name: s.Idxname, table: relKey(s.Relation), unique: s.Unique, createdFile: fileIdx}
			}
		}
	case node.GetDropStmt() != nil:
		c.applyDrop(node.GetDropStmt())
	case node.GetRenameStmt() != nil:
		c.applyRename(node.GetRenameStmt())
	case node.GetCreateFunctionStmt() != nil:
		s := node.GetCreateFunctionStmt()
		names := nameList(s.Funcname)
		if len(names) > 0 {
			c.functions[strings.ToLower(names[len(names)-1])] = functionVolatility(s.Options)
		}
	case node.GetCreateTrigStmt() != nil:
		s := node.GetCreateTrigStmt()
		names := nameList(s.Funcname)
		if len(names) > 0 {
			tr := trigger{name: s.Trigname, table: relKey(s.Relation), function: strings.ToLower(names[len(names)-1])}
			c.triggers = slices.DeleteFunc(c.triggers, func(o trigger) bool { return o.name == tr.name && o.table == tr.table })
			c.triggers = append(c.triggers, tr)
		}
	case node.GetCreateEnumStmt() != nil:
		names := nameList(node.GetCreateEnumStmt().TypeName)
		if len(names) > 0 {
			c.enums[names[len(names)-1]] = fileIdx
		}
	}
}

func newTable(rv *pgtree.RangeVar, kind string, fileIdx int) *table {
	return &table{
		schema: rv.Schemaname, name: rv.Relname, kind: kind,
		columns: map[string]*column{}, constraints: map[string]*constraint{},
		createdFile: fileIdx, bytes: -1,
	}
}

func (c *Catalog) applyCreate(s *pgtree.CreateStmt, fileIdx int, at string) {
	k := relKey(s.Relation)
	if _, ok := c.tables[k]; ok && s.IfNotExists {
		return
	}
	t := newTable(s.Relation, "table", fileIdx)
	t.maybeExisting, t.createdAt = s.IfNotExists && !c.live, at
	t.partitioned = s.Partspec != nil
	c.tables[k] = t
	// PARTITION OF and INHERITS copy the parent's columns.
	for _, p := range s.InhRelations {
		if rv := p.GetRangeVar(); rv != nil {
			if parent := c.tables[relKey(rv)]; parent != nil {
				for n, col := range parent.columns {
					cc := *col
					t.columns[n] = &cc
				}
			}
		}
	}
	for _, e := range s.TableElts {
		switch {
		case e.GetColumnDef() != nil:
			cd := e.GetColumnDef()
			col := &column{name: cd.Colname, typ: typeOf(cd.TypeName), notNull: cd.IsNotNull}
			for _, cn := range cd.Constraints {
				con := cn.GetConstraint()
				if con == nil {
					continue
				}
				switch con.Contype {
				case pgtree.ConstrType_CONSTR_NOTNULL, pgtree.ConstrType_CONSTR_PRIMARY:
					col.notNull = true
				}
				c.addConstraint(t, con, []string{cd.Colname}, true, fileIdx)
			}
			t.columns[cd.Colname] = col
			if isSerial(cd.TypeName) && s.Relation.Relpersistence != "t" {
				// The column's sequence, which PostgreSQL names table_column_seq (when that
				// fits; a longer name is shortened, and is then unknown here).
				seq := &pgtree.RangeVar{Schemaname: s.Relation.Schemaname, Relname: s.Relation.Relname + "_" + cd.Colname + "_seq"}
				if k := relKey(seq); c.tables[k] == nil && len(seq.Relname) < 64 {
					st := newTable(seq, "sequence", fileIdx)
					st.maybeExisting = t.maybeExisting
					c.tables[k] = st
				}
			}
		case e.GetConstraint() != nil:
			c.addConstraint(t, e.GetConstraint(), nil, true, fileIdx)
		}
	}
	for _, cn := range s.Constraints {
		if con := cn.GetConstraint(); con != nil {
			c.addConstraint(t, con, nil, true, fileIdx)
		}
	}
}

// addConstraint records con on t. onCreate marks constraints created with the table,
// which are always valid.
func (c *Catalog) addConstraint(t *table, con *pgtree.Constraint, cols []string, onCreate bool, fileIdx int) {
	var kind conKind
	switch con.Contype {
	case pgtree.ConstrType_CONSTR_CHECK:
		kind = conCheck
	case pgtree.ConstrType_CONSTR_FOREIGN:
		kind = conForeign
	case pgtree.ConstrType_CONSTR_UNIQUE:
		kind = conUnique
	case pgtree.ConstrType_CONSTR_PRIMARY:
		kind = conPrimary
		keys := nameList(con.Keys)
		if len(keys) == 0 {
			keys = cols
		}
		for _, k := range keys {
			if col := t.columns[k]; col != nil {
				col.notNull = true
			}
		}
	case pgtree.ConstrType_CONSTR_EXCLUSION:
		kind = conExclude
	case pgtree.ConstrType_CONSTR_NOTNULL:
		kind = conNotNull
	default:
		return
	}
	name := con.Conname
	if name == "" {
		name = defaultConstraintName(t.name, kind, append(append([]string{}, cols...), nameList(con.Keys)...), con)
	}
	cs := &constraint{name: name, kind: kind, validated: onCreate || !con.SkipValidation}
	switch kind {
	case conPrimary:
		cs.keys = nameList(con.Keys)
		if len(cs.keys) == 0 {
			cs.keys = cols
		}
	case conForeign:
		cs.keys = nameList(con.FkAttrs)
		if len(cs.keys) == 0 {
			cs.keys = cols
		}
		cs.refTable = relKey(con.Pktable)
		cs.refKeys = nameList(con.PkAttrs)
	}
	if kind == conCheck {
		cs.notNullCols = notNullColumns(con.RawExpr)
	}
	if kind == conNotNull {
		cs.notNullCols = append(cs.notNullCols, nameList(con.Keys)...)
		if cs.validated {
			for _, k := range cs.notNullCols {
				if col := t.columns[k]; col != nil {
					col.notNull = true
				}
			}
		}
	}
	t.constraints[name] = cs
	if (kind == conUnique || kind == conPrimary || kind == conExclude) && con.Indexname == "" {
		ik := qualify(t.schema, name)
		c.indexes[ik] = &index{name: name, table: qualify(t.schema, t.name), unique: kind != conExclude, createdFile: fileIdx}
	}
}

// notNullColumns returns the columns that expr proves NOT NULL: "col IS NOT NULL", possibly
// combined with AND.
func notNullColumns(expr *pgtree.Node) []string {
	if expr == nil {
		return nil
	}
	if nt := expr.GetNullTest(); nt != nil && nt.Nulltesttype == pgtree.NullTestType_IS_NOT_NULL {
		if cr := nt.Arg.GetColumnRef(); cr != nil {
			f := nameList(cr.Fields)
			if len(f) > 0 {
				return f[len(f)-1:]
			}
		}
		return nil
	}
	if be := expr.GetBoolExpr(); be != nil && be.Boolop == pgtree.BoolExprType_AND_EXPR {
		var out []string
		for _, a := range be.Args {
			out = append(out, notNullColumns(a)...)
		}
		return out
	}
	return nil
}

func (c *Catalog) applyAlter(s *pgtree.AlterTableStmt, fileIdx int) {
	k := relKey(s.Relation)
	t := c.tables[k]
	if t == nil {
		if s.Objtype != pgtree.ObjectType_OBJECT_TABLE {
			return
		}
		// Unknown table: it existed before the files we were given.
		t = newTable(s.Relation, "table", -1)
		c.tables[k] = t
	}
	for _, cn := range s.Cmds {
		cmd := cn.GetAlterTableCmd()
		if cmd == nil {
			continue
		}
		switch cmd.Subtype {
		case pgtree.AlterTableType_AT_AddColumn:
			cd := cmd.Def.GetColumnDef()
			if cd == nil {
				continue
			}
			if _, ok := t.columns[cd.Colname]; ok && cmd.MissingOk {
				continue
			}
			col := &column{name: cd.Colname, typ: typeOf(cd.TypeName), notNull: cd.IsNotNull}
			t.columns[cd.Colname] = col
			for _, x := range cd.Constraints {
				if con := x.GetConstraint(); con != nil {
					if con.Contype == pgtree.ConstrType_CONSTR_NOTNULL || con.Contype == pgtree.ConstrType_CONSTR_PRIMARY {
						col.notNull = true
					}
					c.addConstraint(t, con, []string{cd.Colname}, false, fileIdx)
				}
			}
		case pgtree.AlterTableType_AT_DropColumn:
			delete(t.columns, cmd.Name)
			c.dropColumnConstraints(t, cmd.Name)
		case pgtree.AlterTableType_AT_AlterColumnType:
			if cd := cmd.Def.GetColumnDef(); cd != nil {
				col := t.column(cmd.Name)
				col.typ = typeOf(cd.TypeName)
			}
		case pgtree.AlterTableType_AT_SetNotNull:
			t.column(cmd.Name).notNull = true
		case pgtree.AlterTableType_AT_DropNotNull:
			t.column(cmd.Name).notNull = false
		case pgtree.AlterTableType_AT_AddConstraint:
			if con := cmd.Def.GetConstraint(); con != nil {
				c.addConstraint(t, con, nil, false, fileIdx)
			}
		case pgtree.AlterTableType_AT_AddIndexConstraint:
			if con := cmd.Def.GetConstraint(); con != nil {
				c.addConstraint(t, con, nil, false, fileIdx)
			}
		case pgtree.AlterTableType_AT_ValidateConstraint:
			if cs := t.constraints[cmd.Name]; cs != nil {
				cs.validated = true
			} else {
				t.constraints[cmd.Name] = &constraint{name: cmd.Name, kind: conCheck, validated: true}
			}
			if cs := t.constraints[cmd.Name]; cs.kind == conNotNull {
				for _, n := range cs.notNullCols {
					t.column(n).notNull = true
				}
			}
		case pgtree.AlterTableType_AT_DropConstraint:
			delete(t.constraints, cmd.Name)
		}
	}
}

// column returns the named column, creating an entry of unknown type when the catalog has
// not seen it.
func (t *table) column(name string) *column {
	col := t.columns[name]
	if col == nil {
		col = &column{name: name}
		t.columns[name] = col
	}
	return col
}

// dropColumnConstraints forgets the constraints the catalog knows to involve column col of
// t (a primary or foreign key over it, a check that proves it NOT NULL), and the index of
// a primary key: PostgreSQL drops them with the column.
func (c *Catalog) dropColumnConstraints(t *table, col string) {
	for name, cs := range t.constraints {
		if !slices.Contains(cs.keys, col) && !slices.Contains(cs.notNullCols, col) {
			continue
		}
		delete(t.constraints, name)
		if cs.kind == conPrimary {
			if ix := c.indexes[qualify(t.schema, name)]; ix != nil && ix.table == qualify(t.schema, t.name) {
				delete(c.indexes, qualify(t.schema, name))
			}
		}
	}
}

func (c *Catalog) applyDrop(s *pgtree.DropStmt) {
	for _, o := range s.Objects {
		names := nameList(o.GetList().GetItems())
		if len(names) == 0 {
			continue
		}
		schema, name := "", names[len(names)-1]
		if len(names) > 1 {
			schema = names[len(names)-2]
		}
		k := qualify(schema, name)
		switch s.RemoveType {
		case pgtree.ObjectType_OBJECT_TABLE, pgtree.ObjectType_OBJECT_VIEW, pgtree.ObjectType_OBJECT_MATVIEW:
			delete(c.tables, k)
			delete(c.views, k)
			for ik, ix := range c.indexes {
				if ix.table == k {
					delete(c.indexes, ik)
				}
			}
			c.triggers = slices.DeleteFunc(c.triggers, func(tr trigger) bool { return tr.table == k })
		case pgtree.ObjectType_OBJECT_INDEX:
			delete(c.indexes, k)
		case pgtree.ObjectType_OBJECT_TRIGGER:
			if len(names) >= 2 {
				tk := qualifiedKey(names[:len(names)-1])
				c.triggers = slices.DeleteFunc(c.triggers, func(tr trigger) bool { return tr.table == tk && tr.name == name })
			}
		}
	}
}

func (c *Catalog) applyRename(s *pgtree.RenameStmt) {
	switch s.RenameType {
	case pgtree.ObjectType_OBJECT_TABLE, pgtree.ObjectType_OBJECT_VIEW, pgtree.ObjectType_OBJECT_MATVIEW:
		k := relKey(s.Relation)
		if t := c.tables[k]; t != nil {
			delete(c.tables, k)
			t.name = s.Newname
			nk := qualify(t.schema, t.name)
			c.tables[nk] = t
			for _, ix := range c.indexes {
				if ix.table == k {
					ix.table = nk
				}
			}
			for _, o := range c.tables {
				for _, con := range o.constraints {
					if con.refTable == k {
						con.refTable = nk
					}
				}
			}
			for i := range c.triggers {
				if c.triggers[i].table == k {
					c.triggers[i].table = nk
				}
			}
			if v := c.views[k]; v != nil {
				delete(c.views, k)
				c.views[nk] = v
			}
			c.renames = append(c.renames, rename{table: k, to: nk})
		}
	case pgtree.ObjectType_OBJECT_COLUMN:
		if t := c.tables[relKey(s.Relation)]; t != nil {
			if col := t.columns[s.Subname]; col != nil {
				delete(t.columns, s.Subname)
				col.name = s.Newname
				t.columns[s.Newname] = col
			}
			c.renames = append(c.renames, rename{table: relKey(s.Relation), column: s.Subname, to: s.Newname})
		}
	case pgtree.ObjectType_OBJECT_TABCONSTRAINT:
		if t := c.tables[relKey(s.Relation)]; t != nil {
			if cs := t.constraints[s.Subname]; cs != nil {
				delete(t.constraints, s.Subname)
				cs.name = s.Newname
				t.constraints[s.Newname] = cs
			}
		}
	case pgtree.ObjectType_OBJECT_INDEX:
		k := relKey(s.Relation)
		if ix := c.indexes[k]; ix != nil {
			delete(c.indexes, k)
			ix.name = s.Newname
			c.indexes[qualify(s.Relation.Schemaname, s.Newname)] = ix
		}
	}
}

// defaultConstraintName imitates PostgreSQL's names for unnamed constraints (t_col_check,
// t_col_fkey, t_col_key, t_pkey, t_col_excl), so that a later VALIDATE or DROP finds them.
func defaultConstraintName(tbl string, kind conKind, cols []string, con *pgtree.Constraint) string {
	if kind == conCheck && len(cols) == 0 {
		cols = notNullColumns(con.RawExpr)
		if len(cols) == 0 {
			cols = firstColumnRef(con.RawExpr)
		}
	}
	if kind == conForeign && len(cols) == 0 {
		cols = nameList(con.FkAttrs)
	}
	base := tbl
	if kind != conPrimary && len(cols) > 0 {
		base += "_" + strings.Join(cols, "_")
	}
	switch kind {
	case conCheck:
		return base + "_check"
	case conForeign:
		return base + "_fkey"
	case conUnique:
		return base + "_key"
	case conPrimary:
		return base + "_pkey"
	case conExclude:
		return base + "_excl"
	default:
		return base + "_not_null"
	}
}

// firstColumnRef returns the first column an expression mentions.
func firstColumnRef(n *pgtree.Node) []string {
	var out []string
	pgtree.Walk(n, func(x *pgtree.Node) bool {
		if cr := x.GetColumnRef(); cr != nil && out == nil {
			f := nameList(cr.Fields)
			if len(f) > 0 {
				out = f[len(f)-1:]
			}
			return false
		}
		return out == nil
	})
	return out
}
