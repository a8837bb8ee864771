// Package migrate is Tandem's expand/contract schema migration engine.
//
// A migration is applied in two halves so that two versions of an application can run
// against one PostgreSQL database during a rolling update:
//
//   - Start (expand) makes additive changes only and creates a version schema of views
//     (see VersionSchema) that shows the tables as the new version sees them. The old
//     version keeps using its own version schema, unchanged. Columns whose values differ
//     between the versions get a physical shadow column kept in sync by triggers, and
//     existing rows are backfilled in batches.
//   - Complete (contract) makes the destructive changes once no instance of the old
//     version is left, and drops the old version schema.
//   - Rollback undoes a started migration that has not been completed.
//
// # Backfill
//
// A backfill fills a new column's existing rows with its up expression, on
// Options.BackfillWorkers connections side by side, in batches of pages that each save
// their progress, so an interrupted start resumes where it stopped. The bulk of it runs
// before the column's dual-write trigger exists, since a trigger slows every row it
// writes; until start ends only the old version writes, and it cannot see the column.
// Then the trigger and the column's checks go in, and a catch-up pass computes the value
// again for the rows the old version wrote meanwhile (those whose xmin is none of the
// bulk's transactions). Checks hold the bulk's writes from the start, through guards, so
// a value up gets wrong stops the backfill at that row, named in a BackfillError.
//
// A backfill yields to the application: at Options.BackfillImpact ImpactNormal (the
// default) a watcher samples pg_stat_activity and pg_locks, and while sessions wait on a
// batch's row locks, the server is busy, or batches overrun their target, the backfill
// runs one batch at a time, with smaller batches and pauses, and speeds up again once
// the pressure is gone. BackfillProgress.Throttle (and Status) say when and why it holds
// back. Options.BackfillRate caps its rows per second.
//
// Migration files use pgroll's JSON/YAML operation format. Every step is idempotent and
// recorded in a state schema, so a run that was killed can be repeated, or rolled back.
package migrate
