package sink

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Class says what a failed write means for the ops in it.
type Class int

const (
	// Transient errors pass: the connection, the server or a lock conflict.
	// The same batch is retried and nothing is dead-lettered.
	Transient Class = iota
	// Permanent errors are in the data: the same ops fail again however
	// often they are retried, so the offending ones are dead-lettered.
	Permanent
)

// String returns "transient" or "permanent", the label used in metrics.
func (c Class) String() string {
	if c == Permanent {
		return "permanent"
	}
	return "transient"
}

// Classify tells a permanent write error (bad data, unknown entity) from a
// transient one (anything about the connection or the server's state), by
// SQLSTATE and error type, never by message text. An error it does not know
// is transient: retrying a good op costs time, dead-lettering it loses it
// from the normal path.
func Classify(err error) Class {
	if errors.Is(err, ErrUnknownEntity) || errors.Is(err, ErrConvert) {
		return Permanent
	}
	// Every SQLSTATE class but permanentClasses is about the server, the
	// connection, a lock or the operator's set-up (a missing table, 42P01,
	// means migrate was not run), so the ops wait rather than being
	// dead-lettered.
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && inClass(pgErr.Code, permanentClasses) {
		return Permanent
	}
	return Transient
}

// permanentClasses are the SQLSTATE classes raised by what an op holds, so
// they fail the same way however often they are retried: data exception
// (22), integrity constraint violation (23), program limit exceeded such as
// a row too large for an index (54), and what triggers and routines raise
// when they reject a row: triggered action (09), SQL routine (2F),
// triggered data change (27), external routine (38, 39), WITH CHECK OPTION
// (44) and PL/pgSQL RAISE (P0).
var permanentClasses = []string{"22", "23", "54", "09", "2F", "27", "38", "39", "44", "P0"}

// transientClasses are the SQLSTATE classes about the connection (08), the
// server's state (25 read-only, 53 resources, 57 operator intervention, 58
// system), locks and conflicts (40, 55) and the operator's set-up (28, 3D,
// 3F, 42): never the data of one op.
var transientClasses = []string{"08", "25", "28", "3D", "3F", "40", "42", "53", "55", "57", "58"}

// Unclassified reports whether err is an error PostgreSQL raised for the
// statement whose class neither list knows (XX, a custom ERRCODE): it may be
// the server's or the data's. The flusher retries such a batch a few times,
// then looks for ops it fails on alone.
func Unclassified(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && !inClass(pgErr.Code, permanentClasses) && !inClass(pgErr.Code, transientClasses)
}

// inClass reports whether SQLSTATE code is of one of classes.
func inClass(code string, classes []string) bool {
	return slices.ContainsFunc(classes, func(class string) bool { return strings.HasPrefix(code, class) })
}

// connectionClasses are the SQLSTATE codes and classes of a server that
// cannot be reached or is going away: connection exceptions (08), operator
// intervention such as a shutdown (57P), insufficient resources (53).
var connectionClasses = []string{"08", "57P", "53"}

// IsConnection reports whether err is about reaching PostgreSQL at all
// (refused, reset, closed, timed out, server shutting down), as opposed to
// an error in the statement: the flusher logs these as an outage.
func IsConnection(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return inClass(pgErr.Code, connectionClasses)
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, context.DeadlineExceeded) || pgconn.SafeToRetry(err)
}

// IsMissingTable reports whether err says a table does not exist (42P01):
// the tables were not created (`flusher migrate`). Such errors are
// transient, so no op is dead-lettered for an operator's omission.
func IsMissingTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P01"
}
