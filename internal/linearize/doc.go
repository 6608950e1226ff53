// Package linearize holds the outside judge of promise 6 of the design:
// per key, every read is linearizable. It has no code of its own, only
// tests.
//
// A round starts real flusher processes on a namespace of its own and
// several client processes (the test binary re-executed), which put,
// delete, write through and read a few keys of one entity through the
// public API from many goroutines, each logging every call with its wall
// clock interval to a file of JSON lines. The round SIGKILLs a flusher and a
// client on the way, then reads the files back, builds one history per key
// and asks porcupine whether a single register could have produced it:
// writes set the value (a delete sets "not found"), reads return the
// current one. A write that failed, or whose process died before it
// returned, may or may not have happened, so it stays open until after the
// end of the history.
//
// The client binary can be built with -tags wb_broken_fill, which removes
// the lease check from fills: TestCheckerCatchesBrokenFill runs a round with
// it and expects a violation, so a checker that sees nothing is caught too.
//
// make linearize runs long rounds of many seeds (WB_LINEARIZE_DURATION).
package linearize
