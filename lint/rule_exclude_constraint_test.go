package lint

import "testing"

func TestRuleExcludeConstraint(t *testing.T) {
	runRuleCases(t, "exclude-constraint", []ruleCase{
		{name: "gist overlap", sql: `ALTER TABLE bookings ADD CONSTRAINT no_overlap EXCLUDE USING gist (room WITH =, during WITH &&);`, want: true},
		{name: "unnamed", sql: `ALTER TABLE bookings ADD EXCLUDE USING gist (during WITH &&);`, want: true},
		{name: "table from an earlier file", sql: "CREATE TABLE bookings (room int, during tstzrange);" + fileSep + "ALTER TABLE bookings ADD EXCLUDE USING gist (during WITH &&);", want: true},
		{name: "in create table", sql: `CREATE TABLE bookings (room int, during tstzrange, EXCLUDE USING gist (during WITH &&));`},
		{name: "new table", sql: "CREATE TABLE bookings (room int, during tstzrange);\nALTER TABLE bookings ADD EXCLUDE USING gist (during WITH &&);"},
		{name: "unique constraint", sql: `ALTER TABLE bookings ADD CONSTRAINT u UNIQUE USING INDEX u_idx;`},
	})
}
