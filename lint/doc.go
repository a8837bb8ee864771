// Package lint finds the statements in plain SQL migrations that cause downtime during a
// rolling upgrade of a PostgreSQL-backed service.
//
// Migrations are parsed with the real PostgreSQL parser (pg_query) and replayed, in order,
// into an in-memory catalog of tables, columns, constraints and indexes, so that a rule can
// tell a table created earlier in the same file (locking it is harmless) from a busy one,
// know a column's type before an ALTER TYPE, or see that a validated CHECK (col IS NOT NULL)
// makes a later SET NOT NULL cheap. The linter also models how the migration runner executes
// a file (one transaction, or none), because CONCURRENTLY cannot run in a transaction and a
// strong lock is held until COMMIT.
//
// Every finding names the lock taken and what it blocks, whether the table is rewritten,
// whether the previous application version breaks, and a safe recipe as SQL. The rules are
// listed by [Rules]; their IDs are stable and documented in docs/lint-rules.md.
//
// Use [Lint] on a set of [Source] files, then one of the formatters ([WriteText],
// [WriteJSON], [WriteSARIF], [WriteGitHub]) to print the [Result].
package lint
