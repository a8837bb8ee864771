package upgrade

import (
	"context"
)

// stepExpand applies the pending migrations of every stream of the release as one expand
// step, as `tandem migrate` does: the pre-deploy SQL files, then the pgroll migrations
// combined; the running version keeps working, and the new version's schema appears. A
// start interrupted by a crash is resumed by the engine.
func (u *Upgrader) stepExpand(ctx context.Context, rec *Record) error {
	return u.expandStreams(ctx, rec)
}
