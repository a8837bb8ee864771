package lint

import (
	"slices"
	"strings"

	"github.com/tandem-pg/tandem/internal/pgtree"
)

// lockMode is a PostgreSQL table lock level, weakest first.
type lockMode int

const (
	lockNone lockMode = iota
	lockAccessShare
	lockRowShare
	lockRowExclusive
	lockShareUpdateExclusive
	lockShare
	lockShareRowExclusive
	lockExclusive
	lockAccessExclusive
)

var lockNames = [...]string{
	"", "ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE",
	"SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE",
}

// String returns the SQL name of the lock level.
func (m lockMode) String() string { return lockNames[m] }

// blocks says what normal application traffic the lock blocks while it is held or queued.
func (m lockMode) blocks() string {
	switch {
	case m == lockAccessExclusive:
		return "reads and writes"
	case m >= lockShare:
		return "writes"
	}
	return ""
}

// blocksTraffic reports whether the lock blocks reads or writes (SHARE or stronger).
func (m lockMode) blocksTraffic() bool { return m >= lockShare }

// lockTake is one lock a statement takes on a table.
type lockTake struct {
	table string // catalog key
	mode  lockMode
}

// alterCmdLock returns the lock one ALTER TABLE subcommand takes.
func alterCmdLock(cmd *pgtree.AlterTableCmd) lockMode {
	switch cmd.Subtype {
	case pgtree.AlterTableType_AT_SetStatistics, pgtree.AlterTableType_AT_SetOptions,
		pgtree.AlterTableType_AT_ResetOptions, pgtree.AlterTableType_AT_ValidateConstraint,
		pgtree.AlterTableType_AT_ClusterOn, pgtree.AlterTableType_AT_DropCluster,
		pgtree.AlterTableType_AT_SetRelOptions, pgtree.AlterTableType_AT_ResetRelOptions,
		pgtree.AlterTableType_AT_AttachPartition, pgtree.AlterTableType_AT_DetachPartitionFinalize:
		return lockShareUpdateExclusive
	case pgtree.AlterTableType_AT_DetachPartition:
		if pc := cmd.Def.GetPartitionCmd(); pc != nil && pc.Concurrent {
			return lockShareUpdateExclusive
		}
		return lockAccessExclusive
	case pgtree.AlterTableType_AT_EnableTrig, pgtree.AlterTableType_AT_EnableAlwaysTrig,
		pgtree.AlterTableType_AT_EnableReplicaTrig, pgtree.AlterTableType_AT_DisableTrig,
		pgtree.AlterTableType_AT_EnableTrigAll, pgtree.AlterTableType_AT_DisableTrigAll,
		pgtree.AlterTableType_AT_EnableTrigUser, pgtree.AlterTableType_AT_DisableTrigUser,
		pgtree.AlterTableType_AT_AlterConstraint:
		return lockShareRowExclusive
	case pgtree.AlterTableType_AT_AddConstraint:
		if con := cmd.Def.GetConstraint(); con != nil && con.Contype == pgtree.ConstrType_CONSTR_FOREIGN {
			return lockShareRowExclusive
		}
	}
	return lockAccessExclusive
}

// statementLocks lists the table locks a statement takes. Unknown statements take none.
func (e *engine) statementLocks(n *pgtree.Node) []lockTake {
	var out []lockTake
	add := func(key string, m lockMode) {
		if key == "" || m == lockNone {
			return
		}
		for i := range out {
			if out[i].table == key {
				if m > out[i].mode {
					out[i].mode = m
				}
				return
			}
		}
		out = append(out, lockTake{table: key, mode: m})
	}
	switch {
	case n.GetAlterTableStmt() != nil:
		s := n.GetAlterTableStmt()
		key := relKey(s.Relation)
		if s.Objtype == pgtree.ObjectType_OBJECT_INDEX {
			if ix := e.cat.indexes[key]; ix != nil {
				key = ix.table
			}
		}
		m := lockNone
		for _, c := range s.Cmds {
			cmd := c.GetAlterTableCmd()
			if cmd == nil {
				continue
			}
			if cm := alterCmdLock(cmd); cm > m {
				m = cm
			}
			if con := cmd.Def.GetConstraint(); con != nil && con.Pktable != nil {
				add(relKey(con.Pktable), lockShareRowExclusive)
			}
			if cd := cmd.Def.GetColumnDef(); cd != nil {
				for _, x := range cd.Constraints {
					if con := x.GetConstraint(); con != nil && con.Pktable != nil {
						add(relKey(con.Pktable), lockShareRowExclusive)
					}
				}
			}
			// Dropping a foreign key (itself, or with its column) removes its triggers from the
			// referenced table, under ACCESS EXCLUSIVE there too.
			if t := e.cat.tables[key]; t != nil {
				for _, con := range t.constraints {
					if con.kind != conForeign || con.refTable == "" {
						continue
					}
					if cmd.Subtype == pgtree.AlterTableType_AT_DropConstraint && con.name == cmd.Name ||
						cmd.Subtype == pgtree.AlterTableType_AT_DropColumn && slices.Contains(con.keys, cmd.Name) {
						add(con.refTable, lockAccessExclusive)
					}
				}
			}
			if cmd.Subtype == pgtree.AlterTableType_AT_AttachPartition {
				if pc := cmd.Def.GetPartitionCmd(); pc != nil {
					add(relKey(pc.Name), lockAccessExclusive)
				}
			}
		}
		add(key, m)
	case n.GetIndexStmt() != nil:
		s := n.GetIndexStmt()
		if s.Concurrent {
			add(relKey(s.Relation), lockShareUpdateExclusive)
		} else {
			add(relKey(s.Relation), lockShare)
		}
	case n.GetDropStmt() != nil:
		s := n.GetDropStmt()
		for _, key := range dropKeys(s) {
			switch s.RemoveType {
			case pgtree.ObjectType_OBJECT_INDEX:
				t := key
				if ix := e.cat.indexes[key]; ix != nil {
					t = ix.table
				}
				if s.Concurrent {
					add(t, lockShareUpdateExclusive)
				} else {
					add(t, lockAccessExclusive)
				}
			case pgtree.ObjectType_OBJECT_TABLE, pgtree.ObjectType_OBJECT_VIEW, pgtree.ObjectType_OBJECT_MATVIEW:
				add(key, lockAccessExclusive)
				if t := e.cat.tables[key]; t != nil {
					for _, con := range t.constraints {
						if con.kind == conForeign && con.refTable != "" && con.refTable != key {
							add(con.refTable, lockAccessExclusive) // its foreign keys' triggers go
						}
					}
				}
			}
		}
		switch s.RemoveType {
		case pgtree.ObjectType_OBJECT_TRIGGER, pgtree.ObjectType_OBJECT_POLICY, pgtree.ObjectType_OBJECT_RULE:
			// DROP TRIGGER name ON table: the object's name is last, after the table's.
			for _, o := range s.Objects {
				if names := nameList(o.GetList().GetItems()); len(names) >= 2 {
					add(qualifiedKey(names[:len(names)-1]), lockAccessExclusive)
				}
			}
		}
	case n.GetReindexStmt() != nil:
		s := n.GetReindexStmt()
		m := lockAccessExclusive // SHARE on the table, ACCESS EXCLUSIVE on its indexes
		if hasOption(s.Params, "concurrently") {
			m = lockShareUpdateExclusive
		}
		switch s.Kind {
		case pgtree.ReindexObjectType_REINDEX_OBJECT_TABLE:
			add(relKey(s.Relation), m)
		case pgtree.ReindexObjectType_REINDEX_OBJECT_INDEX:
			key := relKey(s.Relation)
			if ix := e.cat.indexes[key]; ix != nil {
				key = ix.table
			}
			add(key, m)
		}
	case n.GetVacuumStmt() != nil:
		s := n.GetVacuumStmt()
		m := lockShareUpdateExclusive
		if s.IsVacuumcmd && hasOption(s.Options, "full") {
			m = lockAccessExclusive
		}
		for _, r := range s.Rels {
			if vr := r.GetVacuumRelation(); vr != nil {
				add(relKey(vr.Relation), m)
			}
		}
	case n.GetClusterStmt() != nil:
		add(relKey(n.GetClusterStmt().Relation), lockAccessExclusive)
	case n.GetRefreshMatViewStmt() != nil:
		s := n.GetRefreshMatViewStmt()
		if s.Concurrent {
			add(relKey(s.Relation), lockExclusive)
		} else {
			add(relKey(s.Relation), lockAccessExclusive)
		}
	case n.GetTruncateStmt() != nil:
		for _, r := range n.GetTruncateStmt().Relations {
			add(relKey(r.GetRangeVar()), lockAccessExclusive)
		}
	case n.GetRenameStmt() != nil:
		s := n.GetRenameStmt()
		switch s.RenameType {
		case pgtree.ObjectType_OBJECT_INDEX:
			key := relKey(s.Relation)
			if ix := e.cat.indexes[key]; ix != nil {
				key = ix.table
			}
			add(key, lockShareUpdateExclusive)
		case pgtree.ObjectType_OBJECT_TABLE, pgtree.ObjectType_OBJECT_COLUMN,
			pgtree.ObjectType_OBJECT_TABCONSTRAINT, pgtree.ObjectType_OBJECT_VIEW,
			pgtree.ObjectType_OBJECT_MATVIEW, pgtree.ObjectType_OBJECT_TRIGGER,
			pgtree.ObjectType_OBJECT_POLICY, pgtree.ObjectType_OBJECT_RULE:
			add(relKey(s.Relation), lockAccessExclusive)
		}
	case n.GetCreatePolicyStmt() != nil:
		add(relKey(n.GetCreatePolicyStmt().Table), lockAccessExclusive)
	case n.GetAlterPolicyStmt() != nil:
		add(relKey(n.GetAlterPolicyStmt().Table), lockAccessExclusive)
	case n.GetRuleStmt() != nil:
		add(relKey(n.GetRuleStmt().Relation), lockAccessExclusive)
	case n.GetCommentStmt() != nil:
		s := n.GetCommentStmt()
		names := nameList(s.Object.GetList().GetItems())
		switch {
		case s.Objtype == pgtree.ObjectType_OBJECT_COLUMN && len(names) >= 2:
			add(qualifiedKey(names[:len(names)-1]), lockShareUpdateExclusive)
		case (s.Objtype == pgtree.ObjectType_OBJECT_TABLE || s.Objtype == pgtree.ObjectType_OBJECT_VIEW ||
			s.Objtype == pgtree.ObjectType_OBJECT_MATVIEW) && len(names) >= 1:
			add(qualifiedKey(names), lockShareUpdateExclusive)
		}
	case n.GetCreateStatsStmt() != nil:
		for _, r := range n.GetCreateStatsStmt().Relations {
			add(relKey(r.GetRangeVar()), lockShareUpdateExclusive)
		}
	case n.GetViewStmt() != nil:
		s := n.GetViewStmt()
		if t := e.cat.tables[relKey(s.View)]; s.Replace && t != nil {
			add(relKey(s.View), lockAccessExclusive)
		}
	case n.GetMergeStmt() != nil:
		add(relKey(n.GetMergeStmt().Relation), lockRowExclusive)
	case n.GetCreateTrigStmt() != nil:
		add(relKey(n.GetCreateTrigStmt().Relation), lockShareRowExclusive)
	case n.GetCreateStmt() != nil:
		s := n.GetCreateStmt()
		if s.Partbound != nil {
			for _, p := range s.InhRelations {
				add(relKey(p.GetRangeVar()), lockAccessExclusive)
			}
		}
		// The foreign keys: table constraints, and column constraints (REFERENCES).
		fk := func(x *pgtree.Node) {
			if con := x.GetConstraint(); con != nil && con.Pktable != nil {
				add(relKey(con.Pktable), lockShareRowExclusive)
			}
		}
		for _, elt := range s.TableElts {
			fk(elt)
			for _, c := range elt.GetColumnDef().GetConstraints() {
				fk(c)
			}
		}
		for _, c := range s.Constraints {
			fk(c)
		}
	case n.GetLockStmt() != nil:
		s := n.GetLockStmt()
		m := lockMode(s.Mode)
		if m < lockAccessShare || m > lockAccessExclusive {
			m = lockAccessExclusive
		}
		for _, r := range s.Relations {
			add(relKey(r.GetRangeVar()), m)
		}
	case n.GetInsertStmt() != nil:
		add(relKey(n.GetInsertStmt().Relation), lockRowExclusive)
	case n.GetUpdateStmt() != nil:
		add(relKey(n.GetUpdateStmt().Relation), lockRowExclusive)
	case n.GetDeleteStmt() != nil:
		add(relKey(n.GetDeleteStmt().Relation), lockRowExclusive)
	}
	// What CASCADE drops along, each under ACCESS EXCLUSIVE on its table (cascade.go).
	for _, d := range e.cat.cascadeDependents(n) {
		add(d.table, lockAccessExclusive)
	}
	return out
}

// qualifiedKey is the catalog key of a relation named by a list of names
// ([db.]schema.name or name).
func qualifiedKey(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return qualify("", names[0])
	}
	return qualify(names[len(names)-2], names[len(names)-1])
}

// dropKeys returns the catalog keys of the objects a DROP names.
func dropKeys(s *pgtree.DropStmt) []string {
	var out []string
	for _, o := range s.Objects {
		if k := qualifiedKey(nameList(o.GetList().GetItems())); k != "" {
			out = append(out, k)
		}
	}
	return out
}

// hasOption reports whether a DefElem list (VACUUM, REINDEX options) holds name and does
// not turn it off.
func hasOption(opts []*pgtree.Node, name string) bool {
	for _, o := range opts {
		d := o.GetDefElem()
		if d == nil || !strings.EqualFold(d.Defname, name) {
			continue
		}
		if d.Arg == nil {
			return true
		}
		if b := d.Arg.GetBoolean(); b != nil {
			return b.Boolval
		}
		if s := d.Arg.GetString_(); s != nil {
			v := strings.ToLower(s.Sval)
			return v != "false" && v != "off" && v != "0"
		}
		if c := d.Arg.GetAConst(); c != nil && c.GetIval() != nil {
			return c.GetIval().Ival != 0
		}
		return true
	}
	return false
}
