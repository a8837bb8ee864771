package lint

import (
	"fmt"
	"strings"
)

// batchSize is the number of rows each backfill statement of a recipe changes.
const batchSize = 10000

// batchUpdate renders one batch of a backfill: UPDATE table SET set for at most batchSize
// rows matching where, picked by the table's primary key when the catalog knows it, else
// by ctid (which every table has). Run it until it updates no row.
func (p *pass) batchUpdate(key, set, where string) string {
	tbl := qname(key)
	var pk []string
	if t := p.table(key); t != nil {
		pk = t.primaryKey()
	}
	switch len(pk) {
	case 0:
		return fmt.Sprintf("UPDATE %s SET %s WHERE ctid = ANY (ARRAY(SELECT ctid FROM %s WHERE %s LIMIT %d));", tbl, set, tbl, where, batchSize)
	case 1:
		k := ident(pk[0])
		return fmt.Sprintf("UPDATE %s SET %s WHERE %s IN (SELECT %s FROM %s WHERE %s LIMIT %d);", tbl, set, k, k, tbl, where, batchSize)
	}
	cols := make([]string, len(pk))
	for i, c := range pk {
		cols[i] = ident(c)
	}
	k := strings.Join(cols, ", ")
	return fmt.Sprintf("UPDATE %s SET %s WHERE (%s) IN (SELECT %s FROM %s WHERE %s LIMIT %d);", tbl, set, k, k, tbl, where, batchSize)
}

// setNotNullSteps makes col NOT NULL without scanning the table under an ACCESS EXCLUSIVE
// lock (PostgreSQL 12 and later use the validated CHECK instead of a scan).
func setNotNullSteps(key, col string) []string {
	tbl, c := qname(key), ident(col)
	con := ident(displayName(key) + "_" + col + "_not_null")
	return []string{
		fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s IS NOT NULL) NOT VALID;", tbl, con, c),
		fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s;  -- SHARE UPDATE EXCLUSIVE: reads and writes go on", tbl, con),
		fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL;  -- uses the validated check: no scan", tbl, c),
		fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s;", tbl, con),
	}
}

// primaryKey returns the columns of the table's primary key, or nil.
func (t *table) primaryKey() []string {
	for _, c := range t.constraints {
		if c.kind == conPrimary && len(c.keys) > 0 {
			return c.keys
		}
	}
	return nil
}

// stripComments replaces the comments in a statement's text with spaces, so that an
// excerpt or a recipe that joins its lines does not comment out the rest.
func stripComments(s string) string {
	if !strings.Contains(s, "--") && !strings.Contains(s, "/*") {
		return s
	}
	comments, _, _ := scanSQL(s)
	if len(comments) == 0 {
		return s
	}
	b := []byte(s)
	for _, c := range comments {
		for i := c.start; i < c.end; i++ {
			if b[i] != '\n' {
				b[i] = ' '
			}
		}
	}
	return strings.TrimSpace(string(b))
}
