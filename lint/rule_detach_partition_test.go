package lint

import "testing"

func TestRuleDetachPartitionNotConcurrent(t *testing.T) {
	runRuleCases(t, "detach-partition-not-concurrent", []ruleCase{
		{name: "detach", sql: `ALTER TABLE events DETACH PARTITION events_2020;`, want: true},
		{name: "detach before pg 14", pg: 13, sql: `ALTER TABLE events DETACH PARTITION events_2020;`, want: true},
		{name: "schema qualified", sql: `ALTER TABLE app.events DETACH PARTITION app.events_2020;`, want: true},
		{name: "concurrently", sql: "-- +goose NO TRANSACTION\nALTER TABLE events DETACH PARTITION events_2020 CONCURRENTLY;"},
		{name: "finalize", sql: "-- +goose NO TRANSACTION\nALTER TABLE events DETACH PARTITION events_2020 FINALIZE;"},
		{name: "new table", sql: "CREATE TABLE events (at date) PARTITION BY RANGE (at);\nCREATE TABLE events_2020 PARTITION OF events FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');\nALTER TABLE events DETACH PARTITION events_2020;"},
		{name: "attach", sql: `ALTER TABLE events ATTACH PARTITION events_2030 FOR VALUES FROM ('2030-01-01') TO ('2031-01-01');`},
	})
}
