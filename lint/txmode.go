package lint

// FileMode says how a migration runner must execute the SQL file src, as the rules judge
// it: outside a transaction, statement by statement, when the file says so (noTx, with
// the directive in reason: "-- no-transaction", "-- +goose NO TRANSACTION", ...), and
// whether the file controls its own transactions with BEGIN and COMMIT (explicitTx).
// Tandem's plain-SQL streams run their files this way, so that what ran is what was
// linted.
func FileMode(src string) (noTx bool, reason string, explicitTx bool) {
	pf, err := parseFile("", src, false, false)
	if err != nil {
		return false, "", false
	}
	return pf.mode == txNone, pf.modeReason, pf.explicitTx
}
