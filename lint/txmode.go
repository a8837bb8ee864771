package lint

// FileMode says how a migration runner must execute the SQL file src, as the rules judge
// it: outside a transaction, statement by statement, when the file says so (noTx, with
// the directive in reason: "-- no-transaction", "-- +goose NO TRANSACTION", ...), and
// whether the file controls its own transactions with BEGIN and COMMIT (explicitTx).
// up is the text the rules read: src with its "down" sections (goose's
// "-- +goose Down", dbmate's "-- migrate:down") blanked, offsets and lines kept.
// Tandem's plain-SQL streams run up, the way FileMode says, so that what runs is what
// was linted.
func FileMode(src string) (noTx bool, reason string, explicitTx bool, up string) {
	pf, err := parseFile("", src, false, false)
	if err != nil {
		return false, "", false, src
	}
	return pf.mode == txNone, pf.modeReason, pf.explicitTx, pf.text
}
