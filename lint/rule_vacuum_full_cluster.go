package lint

import "fmt"

func init() {
	register(&Rule{
		ID:       "vacuum-full-cluster",
		Summary:  "VACUUM FULL and CLUSTER rewrite the table under an ACCESS EXCLUSIVE lock",
		Category: CategoryLocks,
		Severity: SeverityError,
		check:    checkVacuumFullCluster,
	})
}

func checkVacuumFullCluster(p *pass, r *Rule) {
	var what string
	var keys []string
	switch {
	case p.node.GetVacuumStmt() != nil:
		s := p.node.GetVacuumStmt()
		if !s.IsVacuumcmd || !hasOption(s.Options, "full") {
			return
		}
		what = "VACUUM FULL"
		for _, rel := range s.Rels {
			keys = append(keys, relKey(rel.GetVacuumRelation().GetRelation()))
		}
	case p.node.GetClusterStmt() != nil:
		what = "CLUSTER"
		if rel := p.node.GetClusterStmt().Relation; rel != nil {
			keys = append(keys, relKey(rel))
		}
	default:
		return
	}
	if len(keys) == 0 {
		keys = []string{""} // every table in the database
	}
	for _, key := range keys {
		if key != "" && !p.existing(key) {
			continue
		}
		target := "every table in the database"
		if key != "" {
			target = displayName(key) + p.sizeNote(key)
		}
		f := p.finding(key, lockAccessExclusive)
		f.Rewrite = true
		f.Message = fmt.Sprintf("%s rewrites %s under an ACCESS EXCLUSIVE lock: reads and writes wait until it finishes", what, target)
		vac := "VACUUM (ANALYZE)"
		if key != "" {
			vac += " " + qname(key)
		}
		f.Fix = recipe(
			vac+";  -- makes dead space reusable without blocking reads or writes",
			"-- to give space back to the operating system online, use pg_repack or pg_squeeze instead")
		p.report(r, f)
	}
}
