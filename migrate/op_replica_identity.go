package migrate

import (
	"context"
	"strings"
)

// OpSetReplicaIdentity sets a table's replica identity (what logical replication logs of
// an updated or deleted row). As in pgroll, it is set on the table at start, so both
// versions have it; rollback restores the identity the table had.
type OpSetReplicaIdentity struct {
	Table    string          `json:"table"`
	Identity ReplicaIdentity `json:"identity"`
}

// ReplicaIdentity is a replica identity: type full, default, nothing or index; index names
// the unique index of type index.
type ReplicaIdentity struct {
	Type  string `json:"type"`
	Index string `json:"index,omitempty"`
}

// Kind implements Operation.
func (o *OpSetReplicaIdentity) Kind() string { return "set_replica_identity" }

func (o *OpSetReplicaIdentity) checkFields() error {
	if err := required("table", o.Table); err != nil {
		return err
	}
	o.Identity.Type = strings.ToLower(strings.TrimSpace(o.Identity.Type))
	switch o.Identity.Type {
	case "full", "default", "nothing":
		if o.Identity.Index != "" {
			return fieldErr("identity.index", "only a replica identity of type index names an index")
		}
	case "index":
		return required("identity.index", o.Identity.Index)
	default:
		return fieldErr("identity.type", "must be one of full, default, nothing, index")
	}
	return nil
}

func (o *OpSetReplicaIdentity) validate(ctx context.Context, v *validator) error {
	t, err := v.table("table", o.Table)
	if err != nil {
		return err
	}
	if o.Identity.Type == "index" && !t.hasIndex(o.Identity.Index) {
		return fieldErr("identity.index", "table %q has no index %q", o.Table, o.Identity.Index)
	}
	t.ReplicaIdentity = o.clause()
	if t.ReplicaIdentity == "DEFAULT" {
		t.ReplicaIdentity = ""
	}
	return nil
}

// clause is the REPLICA IDENTITY clause the operation sets.
func (o *OpSetReplicaIdentity) clause() string {
	if o.Identity.Type == "index" {
		return "USING INDEX " + qi(o.Identity.Index)
	}
	return strings.ToUpper(o.Identity.Type)
}

func (o *OpSetReplicaIdentity) start(ctx context.Context, r *run) error {
	table := r.table(r.opAfter.Table(o.Table).Physical)
	return r.m.execLocked(ctx, []string{table}, "ALTER TABLE "+table+" REPLICA IDENTITY "+o.clause())
}

func (o *OpSetReplicaIdentity) complete(ctx context.Context, r *run) error { return nil }

func (o *OpSetReplicaIdentity) rollback(ctx context.Context, r *run) error {
	t := r.opBefore.Table(o.Table)
	table := r.table(t.Physical)
	if ok, err := tableExists(ctx, r, table); err != nil || !ok {
		return err
	}
	was := t.ReplicaIdentity
	if was == "" {
		was = "DEFAULT"
	}
	return r.m.execLocked(ctx, []string{table}, "ALTER TABLE "+table+" REPLICA IDENTITY "+was)
}
