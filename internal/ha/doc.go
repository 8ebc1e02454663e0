// Package ha runs a seamark server's membership in balancer groups: the
// failover of the balancer itself, by name, without split brain.
//
// What it reads: the registry snapshot — the groups that list this server's
// member name, the other members' candidacies, and the group's role record.
// What it writes, through the store only: this member's candidacy (its
// effective priority, fault state and own view of its role) on a lease of the
// group's lease_ttl, and — when it wins — the group's role record, on the same
// lease, by compare-and-swap on the record's revision. The revision of a
// winning claim is its fencing revision; there is never more than one role
// record, so every DNS server answers <group>.<zone> the same at the same
// store revision.
//
// The rule every member applies to the same snapshot: the active member is
// the highest effective priority among live members not in fault (ties: the
// lowest name). Tracked checks shift a member's priority with keepalived's
// semantics (a negative weight while failing, a positive one while passing;
// weight 0 puts the member in fault). With preempt (the default) a better
// member takes the role once it has been better for preempt_delay; without,
// the active member keeps the role while it is live and not in fault.
//
// Liveness is the lease: a member killed without a word loses its candidacy
// and its role when the lease expires, and the best standby claims the role.
// Fast failover (the default; docs/groups.md) is quicker: every seamark
// server runs an Observer that probes each group's active member every
// ProbeInterval, writes its view (observations/<group>/<observer>, on its own
// lease), and once more than half of the observers of one claim say down,
// ends that claim's lease by a compare on its fencing revision. An active
// member with fast failover renews its lease every RenewEvery and steps down
// on its own after FenceAfter without the store.
// A member stopped gracefully releases the role first, so a standby takes it
// within one watch round trip. A member cut off from the store assumes its
// lease lost once the store has not confirmed it for lease_ttl minus a margin,
// steps down on its own and runs on_fault. Hooks are level-triggered:
// on_active runs again every reassert_interval while the member stays active,
// and after every new lease (a store reconnect), so an address moved away by
// someone else comes back.
package ha
