package lint

import "testing"

func TestRuleRefreshMatviewNotConcurrent(t *testing.T) {
	runRuleCases(t, "refresh-matview-not-concurrent", []ruleCase{
		{name: "refresh", sql: `REFRESH MATERIALIZED VIEW stats;`, want: true},
		{name: "schema qualified", sql: `REFRESH MATERIALIZED VIEW app.stats;`, want: true},
		{name: "view from an earlier file", sql: "CREATE MATERIALIZED VIEW stats AS SELECT 1 AS x;" + fileSep + "REFRESH MATERIALIZED VIEW stats;", want: true},
		{name: "concurrently", sql: `REFRESH MATERIALIZED VIEW CONCURRENTLY stats;`},
		{name: "with no data", sql: `REFRESH MATERIALIZED VIEW stats WITH NO DATA;`},
		{name: "new view", sql: "CREATE MATERIALIZED VIEW stats AS SELECT 1 AS x WITH NO DATA;\nREFRESH MATERIALIZED VIEW stats;"},
	})
}
