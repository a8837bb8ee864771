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
// Migration files use pgroll's JSON/YAML operation format. Every step is idempotent and
// recorded in a state schema, so a run that was killed can be repeated, or rolled back.
package migrate
