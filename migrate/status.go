package migrate

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Status is the state of a schema's migrations, as `tandem status --json` prints it.
type Status struct {
	Schema string `json:"schema"`
	// State is "no migrations", "in progress" or "complete".
	State string `json:"state"`
	// Version is the newest migration, active or completed; VersionSchema its schema.
	Version       string `json:"version,omitempty"`
	VersionSchema string `json:"version_schema,omitempty"`
	// Active is the migration in progress, if any.
	Active    *MigrationInfo     `json:"active,omitempty"`
	Backfills []BackfillProgress `json:"backfills,omitempty"`
	History   []MigrationInfo    `json:"history"`
	// Streams are the migration streams the history shows (docs/streams.md), when a named
	// stream or a plain-SQL file was ever applied: each one's applied and in-progress
	// migrations.
	Streams []StreamState `json:"streams,omitempty"`
}

// MigrationInfo describes one migration in the history.
type MigrationInfo struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	// Includes names the migrations applied together as this one (tandem migrate).
	Includes      []string   `json:"includes,omitempty"`
	Parent        string     `json:"parent,omitempty"`
	File          string     `json:"file,omitempty"`
	VersionSchema string     `json:"version_schema"`
	StartedAt     time.Time  `json:"started_at"`
	CompletedAt   *time.Time `json:"completed_at,omitempty"`
	// TandemVersions names the Tandem build that ran each step ("start", "complete",
	// "rollback") of the migration; empty for steps run before Tandem recorded them.
	TandemVersions map[string]string `json:"tandem_versions,omitempty"`
}

// Status reports the schema's migrations. It takes no lock, so it can watch a migration
// that another process is running.
func (m *Migrator) Status(ctx context.Context) (*Status, error) {
	st := &Status{Schema: m.opts.Schema, State: "no migrations", History: []MigrationInfo{}}
	ok, err := m.st.initialized(ctx, m.conn)
	if err != nil || !ok {
		return st, err
	}
	recs, err := m.st.history(ctx, m.conn)
	if err != nil {
		return nil, err
	}
	if st.Streams, err = m.recordedStreams(ctx, recs); err != nil {
		return nil, err
	}
	for _, r := range recs {
		info := MigrationInfo{Name: r.Name, Status: r.Status, Parent: r.Parent, File: r.File, Includes: r.Includes,
			VersionSchema: m.versionSchemaOf(r), StartedAt: r.StartedAt, CompletedAt: r.CompletedAt}
		st.History = append(st.History, info)
		if r.Status == StatusRolledBack {
			continue
		}
		st.Version, st.VersionSchema, st.State = r.Name, info.VersionSchema, "complete"
		if r.active() {
			a := info
			st.Active = &a
			st.State = "in progress"
		}
	}
	if err := m.addTandemVersions(ctx, st); err != nil {
		return nil, err
	}
	if st.Active != nil {
		// A chunk's share of the total is exact once it is done (see BackfillProgress).
		rows, err := m.conn.Query(ctx, "SELECT min(table_name), min(column_name), sum(rows_done)::bigint, "+
			"sum(CASE WHEN next_page > last_page THEN rows_done ELSE greatest(rows_total, rows_done) END)::bigint, "+
			"bool_or(next_page <= last_page), bool_and(caught_up), "+
			"extract(epoch FROM max(updated_at) - min(started_at))::float8, "+
			"(array_agg(to_jsonb(c) -> 'throttle' ORDER BY updated_at DESC) FILTER (WHERE to_jsonb(c) ->> 'throttle' IS NOT NULL))[1] FROM "+
			qi(m.opts.StateSchema, "backfill_chunks")+" AS c WHERE schema = $1 AND migration = $2 GROUP BY op ORDER BY op", m.opts.Schema, st.Active.Name)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			p := BackfillProgress{Migration: st.Active.Name}
			var secs float64
			var throttle []byte
			if err := rows.Scan(&p.Table, &p.Column, &p.RowsDone, &p.RowsTotal, &p.Estimate, &p.Done, &secs, &throttle); err != nil {
				return nil, err
			}
			if throttle != nil {
				p.Throttle = &BackfillThrottle{}
				if err := json.Unmarshal(throttle, p.Throttle); err != nil {
					return nil, fmt.Errorf("decode the recorded throttle of %s.%s: %w", p.Table, p.Column, err)
				}
			}
			if secs > 0 {
				p.Rate = float64(p.RowsDone) / secs
			}
			p.ETA = eta(p, time.Duration(secs*float64(time.Second)))
			st.Backfills = append(st.Backfills, p)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// LatestVersion returns the newest migration (active or completed) and its version
// schema; both are "" when no migration was applied yet (the app then uses the base
// schema).
func (m *Migrator) LatestVersion(ctx context.Context) (name, versionSchema string, err error) {
	ok, err := m.st.initialized(ctx, m.conn)
	if err != nil || !ok {
		return "", "", err
	}
	r, err := m.st.latest(ctx, m.conn)
	if err != nil || r == nil {
		return "", "", err
	}
	return r.Name, m.versionSchemaOf(r), nil
}
