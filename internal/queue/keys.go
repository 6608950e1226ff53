package queue

import (
	"strconv"
	"strings"
)

// Keys builds every Redis key of one namespace. All keys of a partition share
// the hash tag {ns:p}, so one script may touch a cached value and its
// partition's stream in Redis Cluster; entity names cannot hold ':' and the
// id comes last, so keys never collide.
type Keys struct {
	ns string
}

// NewKeys returns the key builder for namespace ns.
func NewKeys(ns string) Keys { return Keys{ns: ns} }

func (k Keys) prefix(p int) string {
	return k.ns + ":{" + k.ns + ":" + strconv.Itoa(p) + "}:"
}

// Value is the cached value of one document.
func (k Keys) Value(p int, entity, id string) string {
	return k.prefix(p) + "v:" + entity + ":" + id
}

// Stream is the partition's stream of ops.
func (k Keys) Stream(p int) string { return k.prefix(p) + streamName }

// Clock holds the partition's last version, so versions keep increasing when
// cached values expire.
func (k Keys) Clock(p int) string { return k.prefix(p) + clockName }

// DeadLetter is the partition's dead-letter stream: entries that can never
// be flushed, with the reason, kept under the partition's hash tag so one
// script moves an entry there and acknowledges it.
func (k Keys) DeadLetter(p int) string { return k.prefix(p) + deadLetterName }

// Large holds the stream id of the partition's latest large entry (see
// SmallEntryBytes), so a flusher can tell whether the entries it is about to
// read may be large before it reads them.
func (k Keys) Large(p int) string { return k.prefix(p) + largeName }

// Trial is the set of the partition's entries being flushed on their own
// after too many deliveries (see StartTrial).
func (k Keys) Trial(p int) string { return k.prefix(p) + trialName }

// Meta is the namespace's settings hash (the partition count).
func (k Keys) Meta() string { return k.ns + ":meta" }

// The names of a partition's own keys, after its prefix.
const (
	streamName     = "ops"
	clockName      = "clock"
	deadLetterName = "dlq"
	largeName      = "large"
	trialName      = "trial"
)

// partitionOf returns the partition of a partition's own key (stream,
// clock, dead letters, large mark, trials), as Stream, Clock, DeadLetter,
// Large and Trial build them.
func (k Keys) partitionOf(key string) (int, bool) {
	rest, ok := strings.CutPrefix(key, k.ns+":{"+k.ns+":")
	if !ok {
		return 0, false
	}
	digits, name, ok := strings.Cut(rest, "}:")
	p, err := strconv.Atoi(digits)
	if !ok || err != nil || p < 0 || k.prefix(p)+name != key {
		return 0, false
	}
	switch name {
	case streamName, clockName, deadLetterName, largeName, trialName:
		return p, true
	}
	return 0, false
}
