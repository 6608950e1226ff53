package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"

	"github.com/writebehind/writebehind/internal/mapping"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/sink"
	"github.com/writebehind/writebehind/internal/startup"
)

// dlq runs `flusher dlq list|replay|purge`: inspect the dead-letter streams,
// put their entries back into the partition streams, or drop them.
func dlq(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return usageError(stderr, "dlq", errors.New("want list, replay or purge"))
	}
	sub := args[0]
	fs := flag.NewFlagSet("flusher dlq "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "list: one JSON object per line")
	id := fs.String("id", "", "replay: the dead letter with this id")
	partition := fs.Int("partition", -1, "replay: the partition of --id (needed when several hold that id)")
	all := fs.Bool("all", false, "replay: every dead letter")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 {
		fmt.Fprint(stderr, usage)
		return startup.ExitUsage
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
