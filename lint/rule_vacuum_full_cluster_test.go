package lint

import "testing"

func TestRuleVacuumFullCluster(t *testing.T) {
	runRuleCases(t, "vacuum-full-cluster", []ruleCase{
		{name: "vacuum full", sql: "-- +goose NO TRANSACTION\nVACUUM FULL users;", want: true},
		{name: "vacuum (full)", sql: "-- +goose NO TRANSACTION\nVACUUM (FULL, ANALYZE) users;", want: true},
		{name: "cluster", sql: `CLUSTER users USING users_pkey;`, want: true},
		{name: "whole database", sql: "-- +goose NO TRANSACTION\nVACUUM FULL;", want: true},
		{name: "plain vacuum", sql: "-- +goose NO TRANSACTION\nVACUUM users;"},
		{name: "vacuum analyze", sql: "-- +goose NO TRANSACTION\nVACUUM (ANALYZE) users;"},
		{name: "analyze", sql: `ANALYZE users;`},
		{name: "cluster on a new table", sql: "CREATE TABLE t (a int PRIMARY KEY);\nCLUSTER t USING t_pkey;"},
	})
}
