package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/writebehind/writebehind/internal/mapping"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/sink"
	"github.com/writebehind/writebehind/internal/startup"
)

// errUsage marks a command-line mistake: exit 2 with the usage.
var errUsage = errors.New("usage")

// inspectReport is what `flusher inspect --json` prints.
type inspectReport struct {
	Group      string                `json:"group"`
	Partitions []queue.PartitionInfo `json:"partitions"`
	Consumers  []consumerTotal       `json:"consumers"`
	Totals     inspectTotals         `json:"totals"`
	// Groups is every group on the streams: another one that nobody reads
	// holds back trimming.
	Groups []queue.GroupInfo `json:"groups"`
}

// consumerTotal is one consumer over every partition: what it holds, and
// the time since it last touched any partition.
type consumerTotal struct {
	Name    string        `json:"name"`
	Pending int64         `json:"pending"`
	Idle    time.Duration `json:"idle_ns"`
}

type inspectTotals struct {
	Length           int64         `json:"length"`
	Lag              int64         `json:"lag"`
	Pending          int64         `json:"pending"`
	OldestPendingAge time.Duration `json:"oldest_pending_age_ns"`
	DeadLetters      int64         `json:"dead_letters"`
}

// inspect prints the group's state on every partition. It only reads.
func inspect(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("inspect")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return usageError(stderr, "inspect", err)
	}
	return withQueue(stderr, "inspect", func(ctx context.Context, q *queue.Queue, cfg config) error {
		infos, err := q.InspectAll(ctx, cfg.Group)
		if err != nil {
			return err
		}
		rep := summarize(cfg.Group, infos)
		if rep.Groups, err = q.Groups(ctx); err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(rep)
		}
		return writeInspect(stdout, rep)
	})
}

func summarize(group string, infos []queue.PartitionInfo) inspectReport {
	rep := inspectReport{Group: group, Partitions: infos, Consumers: []consumerTotal{}}
	byName := map[string]int{}
	for _, in := range infos {
		rep.Totals.Length += in.Length
		rep.Totals.Lag += in.Lag
		rep.Totals.Pending += in.Pending
		rep.Totals.DeadLetters += in.DeadLetters
		rep.Totals.OldestPendingAge = max(rep.Totals.OldestPendingAge, in.OldestPendingAge)
		for _, c := range in.Consumers {
			i, ok := byName[c.Name]
			if !ok {
				i = len(rep.Consumers)
				byName[c.Name] = i
				rep.Consumers = append(rep.Consumers, consumerTotal{Name: c.Name, Idle: c.Idle})
			}
			rep.Consumers[i].Pending += c.Pending
			rep.Consumers[i].Idle = min(rep.Consumers[i].Idle, c.Idle)
		}
	}
	slices.SortFunc(rep.Consumers, func(a, b consumerTotal) int { return strings.Compare(a.Name, b.Name) })
	return rep
}

func writeInspect(w io.Writer, rep inspectReport) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	// On a cluster, a last column says which primary serves each partition.
	cluster := len(rep.Partitions) > 0 && rep.Partitions[0].Node != ""
	header := "PARTITION\tLENGTH\tLAST-ID\tLAG\tPENDING\tOLDEST-PENDING\tAGE\tDEAD-LETTERS"
	if cluster {
		header += "\tNODE"
	}
	fmt.Fprintln(tw, header)
	for _, in := range rep.Partitions {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%d\t%d\t%s\t%s\t%d", in.Partition, in.Length, orDash(in.LastID),
			in.Lag, in.Pending, orDash(in.OldestPendingID), age(in.OldestPendingID != "", in.OldestPendingAge), in.DeadLetters)
		if cluster {
			fmt.Fprintf(tw, "\t%s", in.Node)
		}
		fmt.Fprintln(tw)
	}
	t := rep.Totals
	fmt.Fprintf(tw, "total\t%d\t\t%d\t%d\t\t%s\t%d\n", t.Length, t.Lag, t.Pending, age(t.Pending > 0, t.OldestPendingAge), t.DeadLetters)
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "CONSUMER\tPENDING\tIDLE")
	var pending int64
	for _, c := range rep.Consumers {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", orDash(c.Name), c.Pending, roundDur(c.Idle))
		pending += c.Pending
	}
	fmt.Fprintf(tw, "total\t%d\t\n", pending)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Groups) > 1 || len(rep.Groups) == 1 && rep.Groups[0].Name != rep.Group {
		fmt.Fprintln(w)
		return writeGroups(w, rep.Groups, rep.Group)
	}
	return nil
}

// orDash renders a name or id for a table cell: "-" when empty, quoted with
// escapes when it holds anything but printable characters and spaces, so
// an id cannot move the operator's cursor, colour the terminal or forge a
// row with a newline or a tab.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	if strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) { // the ASCII space is printable, a tab is not
		return strconv.Quote(s)
	}
	return s
}

func age(known bool, d time.Duration) string {
	if !known {
		return "-"
	}
	return roundDur(d).String()
}

// roundDur keeps durations readable: milliseconds below a minute, seconds
// above.
func roundDur(d time.Duration) time.Duration {
	if d < time.Minute {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}

// newFlagSet is a subcommand's flag set: its errors are returned, for
// usageError to print, never printed by the flag package.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlags parses a subcommand's flags and refuses positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// usageError prints a one-line error and the usage, and returns the exit
// code of a command-line mistake.
func usageError(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "flusher %s: %v\n%s", cmd, err, usage)
	return startup.ExitUsage
}

// withQueue runs an ops command against the configured namespace, after
// checking its partition count. It creates no group, stream or partition
// count; what the command does beyond reading is its own.
func withQueue(stderr io.Writer, cmd string, fn func(context.Context, *queue.Queue, config) error) int {
	cfg := loadConfig()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rdb, err := startup.Redis(cfg.Settings, 0)
	if err == nil {
		defer rdb.Close()
		q := queue.New(rdb, cfg.Namespace, cfg.Partitions)
		if err = q.VerifyPartitions(ctx); err == nil {
			err = fn(ctx, q, cfg)
		}
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		return usageError(stderr, cmd, err)
	}
	fmt.Fprintf(stderr, "flusher %s: %v\n", cmd, err)
	return 1
}

// groups runs `flusher groups [--json]` (every consumer group on the
// partition streams) and `flusher groups remove NAME` (destroy a group
// nobody reads, so trimming can pass its entries).
func groups(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "remove" {
		if len(args) != 2 || args[1] == "" {
			return usageError(stderr, "groups remove", fmt.Errorf("want the name of one group"))
		}
		name := args[1]
		return withQueue(stderr, "groups remove", func(ctx context.Context, q *queue.Queue, cfg config) error {
			if name == cfg.Group {
				return fmt.Errorf("%w: %q is WB_GROUP, the group of these flushers", errUsage, name)
			}
			n, err := q.RemoveGroup(ctx, name)
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("no group %q on any partition", name)
			}
			fmt.Fprintf(stdout, "removed group %s from %d partitions\n", name, n)
			return nil
		})
	}
	fs := newFlagSet("groups")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return usageError(stderr, "groups", err)
	}
	return withQueue(stderr, "groups", func(ctx context.Context, q *queue.Queue, cfg config) error {
		gs, err := q.Groups(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(gs)
		}
		return writeGroups(stdout, gs, cfg.Group)
	})
}

// writeGroups prints groups as a table, marking the flushers' own.
func writeGroups(w io.Writer, gs []queue.GroupInfo, own string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tPARTITIONS\tCONSUMERS\tPENDING\tLAG\t")
	for _, g := range gs {
		mark := ""
		if g.Name == own {
			mark = "(WB_GROUP)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", orDash(g.Name), g.Partitions, g.Consumers, g.Pending, g.Lag, mark)
	}
	return tw.Flush()
}

// pending prints the group's pending entries (XPENDING) with the document
// each op writes. It only reads.
func pending(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("pending")
	partition := fs.Int("partition", -1, "only this partition (default: all)")
	var f queue.PendingFilter
	fs.StringVar(&f.Consumer, "consumer", "", "only entries held by this consumer")
	fs.DurationVar(&f.MinIdle, "min-idle", 0, "only entries idle at least this long")
	fs.IntVar(&f.Limit, "limit", 100, "at most this many entries (0: all)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return usageError(stderr, "pending", err)
	}
	if f.Limit < 0 || f.MinIdle < 0 {
		return usageError(stderr, "pending", fmt.Errorf("--limit and --min-idle must not be negative"))
	}
	return withQueue(stderr, "pending", func(ctx context.Context, q *queue.Queue, cfg config) error {
		if *partition >= q.Partitions() {
			return fmt.Errorf("%w: --partition %d: there are %d partitions (0 to %d)", errUsage, *partition, q.Partitions(), q.Partitions()-1)
		}
		entries := []queue.PendingEntry{}
		for p := range q.Partitions() {
			if *partition >= 0 && p != *partition {
				continue
			}
			pf := f
			if f.Limit > 0 {
				if pf.Limit = f.Limit - len(entries); pf.Limit == 0 {
					break
				}
			}
			got, err := q.Pending(ctx, p, cfg.Group, pf)
			if err != nil {
				return err
			}
			entries = append(entries, got...)
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(entries)
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PARTITION\tENTRY\tCONSUMER\tIDLE\tDELIVERIES\tENTITY\tID")
		for _, e := range entries {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", e.Partition, e.ID, orDash(e.Consumer), roundDur(e.Idle), e.Deliveries, orDash(e.Entity), orDash(e.Key))
		}
		return tw.Flush()
	})
}

// dlq runs `flusher dlq list|replay|purge`: inspect the dead-letter streams,
// put their entries back into the partition streams, or drop them.
func dlq(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return usageError(stderr, "dlq", errors.New("want list, replay or purge"))
	}
	sub := args[0]
	fs := newFlagSet("dlq " + sub)
	asJSON := fs.Bool("json", false, "list: one JSON object per line")
	id := fs.String("id", "", "replay: the dead letter with this id")
	partition := fs.Int("partition", -1, "replay: the partition of --id (needed when several hold that id)")
	all := fs.Bool("all", false, "replay: every dead letter")
	if err := parseFlags(fs, args[1:]); err != nil {
		return usageError(stderr, "dlq "+sub, err)
	}
	switch {
	case sub != "list" && sub != "replay" && sub != "purge":
		return usageError(stderr, "dlq", fmt.Errorf("unknown command %q", sub))
	case sub == "replay" && (*id == "") == !*all:
		return usageError(stderr, "dlq replay", errors.New("give --id ID or --all"))
	case *partition >= 0 && *id == "":
		return usageError(stderr, "dlq replay", errors.New("--partition goes with --id"))
	}

	return withQueue(stderr, "dlq "+sub, func(ctx context.Context, q *queue.Queue, cfg config) error {
		switch sub {
		case "list":
			return dlqList(ctx, q, *asJSON, stdout)
		case "replay":
			return dlqReplay(ctx, cfg, q, *partition, *id, stdout)
		}
		n, err := q.Purge(ctx)
		if err == nil {
			fmt.Fprintf(stdout, "purged %d dead letters\n", n)
		}
		return err
	})
}

func dlqList(ctx context.Context, q *queue.Queue, asJSON bool, stdout io.Writer) error {
	letters, err := q.List(ctx, 0)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		for _, l := range letters {
			if err := enc.Encode(l); err != nil {
				return err
			}
		}
		return nil
	}
	for _, l := range letters {
		fmt.Fprintf(stdout, "%d %s %s %s/%s v%s deliveries=%d source=%s reason=%q\n",
			l.Partition, l.ID, l.Time.Format("2006-01-02T15:04:05Z"), orDash(l.Fields[queue.FieldEntity]), orDash(l.Fields[queue.FieldID]), orDash(l.Fields[queue.FieldVersion]),
			l.Deliveries, l.SourceID, l.Reason)
	}
	fmt.Fprintf(stdout, "%d dead letters\n", len(letters))
	return nil
}

// dlqReplay replays the dead letter id of partition p (p < 0: whichever
// partition holds it, if only one does) or, with id empty, all of them. A
// dead letter whose op PostgreSQL already holds in a newer version is
// removed instead: replaying it would change nothing. Each letter is
// reported; one that fails is reported and the others go on.
func dlqReplay(ctx context.Context, cfg config, q *queue.Queue, p int, id string, stdout io.Writer) error {
	pool, err := startup.Postgres(ctx, cfg.Settings)
	if err != nil {
		return err
	}
	defer pool.Close()
	s, err := sink.NewMapped(pool, cfg.Entities, mapping.Of(cfg.EntitiesFile))
	if err != nil {
		return err
	}
	letters, err := q.List(ctx, 0)
	if err != nil {
		return err
	}
	if id != "" {
		letters = slices.DeleteFunc(letters, func(l queue.DeadLetter) bool { return l.ID != id || p >= 0 && l.Partition != p })
		switch {
		case len(letters) == 0:
			return fmt.Errorf("%w: %s", queue.ErrNoDeadLetter, id)
		case len(letters) > 1:
			return fmt.Errorf("%w: %s is the id of dead letters in %d partitions: give --partition", errUsage, id, len(letters))
		}
	}
	replayed, superseded, failed := 0, 0, 0
	for _, l := range letters {
		newID, err := replayOne(ctx, s, q, l)
		switch {
		case errors.Is(err, queue.ErrNoDeadLetter):
			// Replayed or purged meanwhile.
		case errors.Is(err, queue.ErrSuperseded):
			superseded++
			fmt.Fprintf(stdout, "removed %d %s: PostgreSQL holds a newer version\n", l.Partition, l.ID)
		case err != nil:
			failed++
			fmt.Fprintf(stdout, "failed %d %s: %v\n", l.Partition, l.ID, err)
		default:
			replayed++
			fmt.Fprintf(stdout, "replayed %d %s as %s\n", l.Partition, l.ID, newID)
		}
	}
	fmt.Fprintf(stdout, "%d replayed, %d superseded, %d failed\n", replayed, superseded, failed)
	if failed > 0 {
		return fmt.Errorf("%d dead letters could not be replayed", failed)
	}
	return nil
}

// replayOne replays one dead letter, given the version PostgreSQL holds for
// its key.
func replayOne(ctx context.Context, s *sink.Sink, q *queue.Queue, l queue.DeadLetter) (string, error) {
	var stored int64
	if entity, key := l.Fields[queue.FieldEntity], l.Fields[queue.FieldID]; s.Knows(entity) && key != "" {
		var err error
		if stored, err = s.StoredVersion(ctx, entity, key); err != nil {
			return "", fmt.Errorf("version in PostgreSQL: %w", err)
		}
	}
	return q.Replay(ctx, l, stored)
}
