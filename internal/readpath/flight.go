package readpath

import "sync"

// flights shares one key's read between the concurrent Gets of a process,
// but only with those it is valid for: a caller whose miss came after the read
// looked at the cache may follow a write the read never saw. So a flight
// takes callers until it starts (it is sealed then); a later caller starts
// the next flight, which waits for the running one (and so usually finds its
// fill) before it looks.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight // the newest flight of each key; guarded by mu
}

type flight struct {
	// prev is the flight that was running when this one was made.
	prev *flight
	// sealed is set, under flights.mu, when the flight starts its read.
	sealed bool
	// done is closed once val and err are set.
	done chan struct{}
	val  Value
	err  error
}

// join returns the flight a caller that missed key just now may share, and
// whether the caller must start it.
func (fs *flights) join(key string) (*flight, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	cur := fs.m[key]
	if cur != nil && !cur.sealed {
		return cur, false
	}
	f := &flight{prev: cur, done: make(chan struct{})}
	fs.m[key] = f
	return f, true
}

// seal closes f to new callers: it is about to look at the cache.
func (fs *flights) seal(f *flight) {
	fs.mu.Lock()
	f.sealed = true
	fs.mu.Unlock()
}

// finish hands f's result to its callers.
func (fs *flights) finish(key string, f *flight, v Value, err error) {
	fs.mu.Lock()
	if fs.m[key] == f {
		delete(fs.m, key)
	}
	f.prev = nil
	fs.mu.Unlock()
	f.val, f.err = v, err
	close(f.done)
}
